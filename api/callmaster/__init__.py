"""CallMaster: Clerk-synced users, crews and guests, venues and departments (shows and scripts follow)."""

from api.callmaster import crew, identity, places, webhooks

routes: list = [*webhooks.routes, *identity.routes, *crew.routes, *places.routes]
