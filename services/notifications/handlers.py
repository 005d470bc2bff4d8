"""Event subscribers of the notifications service."""

from services.notifications import service, sharing
from shared.consumer import EventConsumer
from shared.directory import people_directory_consumer
from shared.events import EventType
from shared.graph import social_graph_consumer

CONSUMERS = (
    people_directory_consumer("notifications"),
    social_graph_consumer("notifications"),
    EventConsumer(
        name="notifications.posts",
        event_types=[EventType.POST_CREATED, EventType.POST_DELETED, EventType.POST_AUDIENCE_CHANGED],
        handle=sharing.apply_posts,
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
    EventConsumer(
        name="notifications.sharing",
        event_types=[
            EventType.COMMENT_CREATED,
            EventType.COMMENT_DELETED,
            EventType.ANSWER_ACCEPTED,
            EventType.IDEA_STATUS_CHANGED,
            EventType.CAMPAIGN_CLOSED,
            EventType.QNA_QUESTION_ANSWERED,
            EventType.CONTENT_MODERATED,
        ],
        handle=sharing.apply_sharing,
    ),
)
