"""assistant."""

routes: list = []
