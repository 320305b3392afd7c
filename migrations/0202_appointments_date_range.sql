-- Appointment dates stay within a plausible range (a typo such as 0026-06-15 is refused with 23514
-- instead of becoming an appointment two thousand years ago).
ALTER TABLE clinic.appointments
    ADD CONSTRAINT appointments_date_range_check
    CHECK (appointment_date BETWEEN DATE '1900-01-01' AND DATE '2199-12-31');
