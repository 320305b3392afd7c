"""Clinic records: clinics, staff, patients, leads (encrypted fields), lead import and conversion."""

from api.clinic import lead_import
from api.clinic.appointments import AppointmentController
from api.clinic.control_tower import ControlTowerController
from api.clinic.leads import LeadController
from api.clinic.patients import PatientController
from api.clinic.staff import StaffController, list_doctors

routes: list = [
    StaffController,
    list_doctors,
    PatientController,
    LeadController,
    AppointmentController,
    ControlTowerController,
]

# Spawn the lead-import worker processes at startup, not on the first import request.
on_startup = [lead_import.start_pool]
