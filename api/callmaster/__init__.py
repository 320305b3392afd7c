"""CallMaster: Clerk-synced users, crews and guests, venues and departments, shows, scripts and their
elements, and calling a show live (`live`: SSE feed, show runs, share links, presence)."""

from api.callmaster import crew, elements, identity, live, places, scripts, shows, webhooks

routes: list = [*webhooks.routes, *identity.routes, *crew.routes, *places.routes]
routes += [*shows.routes, *scripts.routes, *elements.routes, *live.routes]
