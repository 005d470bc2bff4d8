-- Whether `viewer` should not hear from `other`: the viewer muted or blocked them, or they blocked the
-- viewer. A mute is one-sided and silent: the muted person is never told and still sees the viewer.
CREATE FUNCTION silenced(viewer text, other text) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM relations r
        WHERE r.active
          AND ((r.actor_id = viewer AND r.target_id = other AND r.kind IN ('mute', 'block'))
               OR (r.actor_id = other AND r.target_id = viewer AND r.kind = 'block'))
    )
$$;
