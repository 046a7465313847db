"""Tasks: the embedded toy world, and (later) MATH and HumanEval."""
