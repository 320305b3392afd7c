"""CallMaster: Clerk-synced users, crews and guests, venues and departments (shows and scripts follow)."""

from api.callmaster import crew, elements, identity, live, places, scripts, shows, webhooks

routes: list = [*webhooks.routes, *identity.routes, *crew.routes, *places.routes]
routes += [*shows.routes, *scripts.routes, *elements.routes, *live.routes]
