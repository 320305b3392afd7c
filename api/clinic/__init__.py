"""Clinic records: clinics, staff, patients, leads (encrypted fields), lead import and conversion."""

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
