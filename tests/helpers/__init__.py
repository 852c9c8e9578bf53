"""Helpers shared by test modules (test modules never import each other): the tiny project, real servers, gate files."""
