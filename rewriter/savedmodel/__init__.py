"""Load and write: one model of a SavedModel (files, graphs, functions, object graph, checkpoint index)."""
