"""Event subscribers of the posts service: author names, the social graph and reaction counts."""

from services.posts import service
from shared.consumer import EventConsumer
from shared.directory import people_directory_consumer
from shared.events import EventType
from shared.graph import social_graph_consumer

CONSUMERS = (
    people_directory_consumer("posts"),
    social_graph_consumer("posts"),
    EventConsumer(
        name="posts.reaction-counts",
        event_types=[
            EventType.POST_LIKED,
            EventType.POST_UNLIKED,
            EventType.POST_FAVOURITED,
            EventType.POST_UNFAVOURITED,
        ],
        handle=service.apply_reaction_counts,
    ),
    EventConsumer(
        name="posts.comment-like-counts",
        event_types=[EventType.COMMENT_LIKED, EventType.COMMENT_UNLIKED],
        handle=service.apply_comment_reaction_counts,
    ),
)
