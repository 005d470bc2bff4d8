"""Event subscribers of the reactions service: the posts that may be reacted to, who may see them, and names."""

from services.reactions import service
from shared.consumer import EventConsumer
from shared.directory import people_directory_consumer
from shared.events import EventType
from shared.graph import social_graph_consumer

CONSUMERS = (
    people_directory_consumer("reactions"),
    social_graph_consumer("reactions"),
    EventConsumer(
        name="reactions.posts",
        event_types=[EventType.POST_CREATED, EventType.POST_AUDIENCE_CHANGED, EventType.POST_DELETED],
        handle=service.apply_post_changes,
    ),
)
