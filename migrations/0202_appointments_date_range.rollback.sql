ALTER TABLE clinic.appointments DROP CONSTRAINT IF EXISTS appointments_date_range_check;
