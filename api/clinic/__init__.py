"""Clinic records: clinics, staff, leads, patients."""

routes: list = []
