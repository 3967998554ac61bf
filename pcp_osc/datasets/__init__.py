"""Labelled data for training and scoring perception backends (converters into YOLO layouts)."""
