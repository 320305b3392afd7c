"""CallMaster: users, crews, venues, departments (and, later, shows and scripts)."""

routes: list = []
