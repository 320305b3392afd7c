"""CallMaster: Clerk-synced users, crews and guests, venues and departments (shows and scripts follow)."""

from api.callmaster import crew, identity, places, webhooks
from api.callmaster import elements, scripts, shows

routes: list = [*webhooks.routes, *identity.routes, *crew.routes, *places.routes]
routes += [*shows.routes, *scripts.routes, *elements.routes]
