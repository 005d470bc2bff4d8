"""Event subscribers of the feeds service: one queue per purpose, each applied by the service layer."""

from services.feeds import service
from shared.consumer import EventConsumer
from shared.directory import people_directory_consumer
from shared.events import EventType
from shared.graph import GRAPH_EVENTS

CONSUMERS = (
    people_directory_consumer("feeds"),
    EventConsumer(
        name="feeds.posts",
        event_types=[
            EventType.POST_CREATED,
            EventType.POST_AUDIENCE_CHANGED,
            EventType.POST_DELETED,
            EventType.CONTENT_MODERATED,
        ],
        handle=service.apply_post_changes,
    ),
    EventConsumer(
        name="feeds.reactions",
        event_types=[EventType.POST_LIKED, EventType.POST_UNLIKED],
        handle=service.apply_reactions,
    ),
    # The graph replica and the feeds change in one transaction: an unfollow applied is an unfollow shown.
    EventConsumer(name="feeds.graph", event_types=GRAPH_EVENTS, handle=service.apply_social_graph),
)
