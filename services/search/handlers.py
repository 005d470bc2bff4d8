"""Event subscribers of the search service: posts and people to find, and the graph that decides who sees what."""

from services.search import service
from shared.consumer import EventConsumer
from shared.events import EventType
from shared.graph import social_graph_consumer

CONSUMERS = (
    social_graph_consumer("search"),
    EventConsumer(
        name="search.posts",
        event_types=[
            EventType.POST_CREATED,
            EventType.POST_AUDIENCE_CHANGED,
            EventType.POST_DELETED,
            EventType.CONTENT_MODERATED,
        ],
        handle=service.apply_post_changes,
    ),
    EventConsumer(name="search.people", event_types=[EventType.PERSON_UPDATED], handle=service.apply_person_updates),
)
