"""Event subscribers of the reactions service: the posts that may be reacted to, who may see them, names, and
what contribution scores are computed from."""

from services.reactions import scores, service
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
    # Posts, comments, moderation and likes (this service's own events among them) as facts for the scores.
    EventConsumer(
        name="reactions.contributions",
        event_types=[
            EventType.POST_CREATED,
            EventType.POST_DELETED,
            EventType.COMMENT_CREATED,
            EventType.COMMENT_DELETED,
            EventType.CONTENT_MODERATED,
            EventType.POST_LIKED,
            EventType.POST_UNLIKED,
            EventType.COMMENT_LIKED,
            EventType.COMMENT_UNLIKED,
        ],
        handle=scores.apply_contribution_events,
    ),
)
