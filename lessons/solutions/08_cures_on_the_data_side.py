"""Lesson 8 has no exercise to fill in: its questions are answered by the printed lines."""

MISTAKES = {}
