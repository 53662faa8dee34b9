-- 005: a name is unique among a family's nodes that are not revoked,
-- without regard to ASCII case (PROFILE.md §P35). Names are labels, node
-- IDs identities; before this, a new enrolment could take an enrolled
-- node's name (an admin's, say) and with it its grants and routes.
--
-- A database from before may hold such duplicates. Of each set of live
-- nodes that share a name the first enrolled (then the lowest node ID)
-- keeps it; the later ones, which are the ones that could have taken a
-- name that was not theirs, are revoked as of their enrolment. `nodes`
-- shows them revoked; their people pair again under another name.
UPDATE nodes SET revoked_at = enrolled_at
WHERE revoked_at IS NULL AND EXISTS (
    SELECT 1 FROM nodes AS first
    WHERE first.revoked_at IS NULL AND lower(first.name) = lower(nodes.name)
      AND (first.enrolled_at < nodes.enrolled_at
           OR (first.enrolled_at = nodes.enrolled_at AND first.node_id < nodes.node_id))
);

-- A partial index: revoked nodes keep their names, and a node that pairs
-- again may take its revoked name.
CREATE UNIQUE INDEX nodes_live_name_idx ON nodes (lower(name)) WHERE revoked_at IS NULL;
