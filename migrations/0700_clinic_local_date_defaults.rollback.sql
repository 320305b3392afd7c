ALTER TABLE clinic.patients ALTER COLUMN registration_date SET DEFAULT current_date;
ALTER TABLE clinic.leads ALTER COLUMN date_added SET DEFAULT current_date;
