"""The browser console (DESIGN §13): `web` serves the pages and the operations endpoints, `refresher`
refreshes the control tower on a schedule, `links` makes the CLI's sign-in links. Kept import-light so
the CLI can print a link without loading the web stack."""
