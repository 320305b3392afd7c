"""Clinic records: clinics, staff, patients, leads (encrypted fields), lead import and conversion."""

from api.clinic import appointments, control_tower, lead_import, leads, patients, staff

routes: list = [*staff.routes, *patients.routes, *leads.routes, *appointments.routes, *control_tower.routes]

# Spawn the lead-import worker processes at startup, not on the first import request.
on_startup = [lead_import.start_pool]
