"""Clinic records: clinics, staff, patients, leads (encrypted fields), lead import and conversion."""

from api.clinic import appointments, control_tower, lead_import, leads, patients, staff

routes: list = [*staff.routes, *patients.routes, *leads.routes, *appointments.routes, *control_tower.routes]

# The lead-import worker processes start with the application, not on the first import request, and
# stop with it.
on_startup = [lead_import.start_pool]
on_shutdown = [lead_import.stop_pool]
