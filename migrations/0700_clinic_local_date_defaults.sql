-- Date defaults in the clinic's timezone: a column DEFAULT cannot read clinics.timezone, so the
-- session's current_date defaults go and the BEFORE INSERT trigger clinic.fill_local_date
-- (sql/clinic/010_common.sql) fills date_added and registration_date instead.

ALTER TABLE clinic.leads ALTER COLUMN date_added DROP DEFAULT;
ALTER TABLE clinic.patients ALTER COLUMN registration_date DROP DEFAULT;
