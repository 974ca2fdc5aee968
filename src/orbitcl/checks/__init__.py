"""Checks of the values a component is built with, each raising a ``ValueError`` that names the
field, the value and what is allowed (``numbers``)."""
