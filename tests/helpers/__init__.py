"""Helpers shared by several test modules (plain functions; fixtures stay in conftest)."""
