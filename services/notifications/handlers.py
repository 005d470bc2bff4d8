"""Event subscribers of the notifications service."""

from services.notifications import service
from shared.consumer import EventConsumer
from shared.directory import people_directory_consumer
from shared.events import EventType
from shared.graph import social_graph_consumer

CONSUMERS = (
    people_directory_consumer("notifications"),
    social_graph_consumer("notifications"),
    EventConsumer(
        name="notifications.posts",
        event_types=[EventType.POST_CREATED, EventType.POST_DELETED],
        handle=service.apply_post_changes,
    ),
    EventConsumer(
        name="notifications.reactions",
        event_types=[
            EventType.POST_LIKED,
            EventType.POST_UNLIKED,
            EventType.POST_FAVOURITED,
            EventType.POST_UNFAVOURITED,
        ],
        handle=service.apply_reactions,
    ),
    EventConsumer(
        name="notifications.follows",
        event_types=[EventType.PERSON_FOLLOWED, EventType.PERSON_UNFOLLOWED],
        handle=service.apply_follows,
    ),
)
