-- CallMaster tables (DESIGN §4): people, places, shows, scripts, elements and their supporting rows.
--
-- Tenant: the owning user. Every owned table carries owner_id; child rows repeat their parent's
-- owner through a composite foreign key (child.parent_id, child.owner_id) -> parent (id, owner_id),
-- so a row can never point at another owner's row even though RLS does not apply to FK checks.
-- owner_id of crew_assignments, scripts and script_elements (and script_id of script_element_groups)
-- may be omitted on INSERT: a trigger (sql/callmaster/020_triggers.sql) copies it from the parent.
-- Row-level security is enabled and forced on every table; the policies live in
-- sql/callmaster/010_access.sql (owner writes; crew assigned to a show read it; others see nothing).

-- People ---------------------------------------------------------------------------------------

CREATE TABLE callmaster.users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_user_id text        UNIQUE,
    email         text        NOT NULL,
    first_name    text,
    last_name     text,
    phone         text,
    image_url     text,
    status        text        NOT NULL DEFAULT 'guest',
    role          text,
    created_by    uuid        REFERENCES callmaster.users (id) ON DELETE SET NULL,
    notes         text,
    preferences   jsonb       NOT NULL DEFAULT '{}',
    is_active     boolean     NOT NULL DEFAULT true,
    deactivated_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_status_check CHECK (status IN ('verified', 'guest')),
    CONSTRAINT users_verified_has_clerk_id_check CHECK (status = 'guest' OR clerk_user_id IS NOT NULL),
    CONSTRAINT users_email_check CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    CONSTRAINT users_clerk_user_id_check CHECK (clerk_user_id <> ''),
    CONSTRAINT users_preferences_check CHECK (jsonb_typeof(preferences) = 'object')
);
-- One user per email, case-insensitively.
CREATE UNIQUE INDEX users_email_key ON callmaster.users (lower(email));
CREATE INDEX users_created_by_idx ON callmaster.users (created_by);

CREATE TABLE callmaster.crew_relationships (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    manager_user_id uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    crew_user_id    uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    is_active       boolean     NOT NULL DEFAULT true,
    notes           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT crew_relationships_pair_key UNIQUE (manager_user_id, crew_user_id),
    CONSTRAINT crew_relationships_not_self_check CHECK (manager_user_id <> crew_user_id)
);
CREATE INDEX crew_relationships_crew_user_id_idx ON callmaster.crew_relationships (crew_user_id);

-- Places ---------------------------------------------------------------------------------------

CREATE TABLE callmaster.venues (
    id             uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id       uuid          NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    name           text          NOT NULL,
    address        text,
    city           text,
    state          text,
    capacity       integer,
    venue_type     text,
    contact_name   text,
    contact_email  text,
    contact_phone  text,
    stage_width    numeric(8, 2),
    stage_depth    numeric(8, 2),
    fly_height     numeric(8, 2),
    equipment      jsonb         NOT NULL DEFAULT '[]',
    notes          text,
    rental_rate    numeric(12, 2),
    minimum_rental numeric(12, 2),
    created_at     timestamptz   NOT NULL DEFAULT now(),
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT venues_id_owner_key UNIQUE (id, owner_id),
    CONSTRAINT venues_name_check CHECK (btrim(name) <> ''),
    CONSTRAINT venues_capacity_check CHECK (capacity >= 0),
    CONSTRAINT venues_venue_type_check CHECK (venue_type ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT venues_contact_email_check CHECK (contact_email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    CONSTRAINT venues_stage_check CHECK (stage_width >= 0 AND stage_depth >= 0 AND fly_height >= 0),
    CONSTRAINT venues_rates_check CHECK (rental_rate >= 0 AND minimum_rental >= 0),
    CONSTRAINT venues_equipment_check CHECK (jsonb_typeof(equipment) = 'array')
);
CREATE INDEX venues_owner_id_name_idx ON callmaster.venues (owner_id, name);

CREATE TABLE callmaster.departments (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    description text,
    color       text,
    initials    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT departments_id_owner_key UNIQUE (id, owner_id),
    CONSTRAINT departments_name_check CHECK (btrim(name) <> ''),
    CONSTRAINT departments_color_check CHECK (color ~ '^#[0-9A-Fa-f]{6}$'),
    CONSTRAINT departments_initials_check CHECK (initials ~ '^[A-Za-z0-9]{1,5}$')
);
-- One department of a name per owner, case-insensitively (also the owner_id FK index).
CREATE UNIQUE INDEX departments_owner_id_name_key ON callmaster.departments (owner_id, lower(name));

-- Shows ----------------------------------------------------------------------------------------

CREATE TABLE callmaster.shows (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    venue_id   uuid,
    name       text        NOT NULL,
    show_date  timestamptz,
    show_end   timestamptz,
    deadline   timestamptz,
    notes      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shows_id_owner_key UNIQUE (id, owner_id),
    -- A show's venue belongs to the same owner; deleting the venue only detaches the show.
    CONSTRAINT shows_venue_fkey FOREIGN KEY (venue_id, owner_id)
        REFERENCES callmaster.venues (id, owner_id) ON DELETE SET NULL (venue_id),
    CONSTRAINT shows_name_check CHECK (btrim(name) <> ''),
    CONSTRAINT shows_end_check CHECK (show_end >= show_date)
);
CREATE INDEX shows_owner_id_show_date_idx ON callmaster.shows (owner_id, show_date);
CREATE INDEX shows_venue_id_idx ON callmaster.shows (venue_id, owner_id);

CREATE TABLE callmaster.crew_assignments (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    show_id       uuid        NOT NULL,
    owner_id      uuid        NOT NULL,
    user_id       uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    department_id uuid,
    show_role     text,
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT crew_assignments_show_fkey FOREIGN KEY (show_id, owner_id)
        REFERENCES callmaster.shows (id, owner_id) ON DELETE CASCADE,
    CONSTRAINT crew_assignments_department_fkey FOREIGN KEY (department_id, owner_id)
        REFERENCES callmaster.departments (id, owner_id) ON DELETE SET NULL (department_id),
    CONSTRAINT crew_assignments_show_user_department_key
        UNIQUE NULLS NOT DISTINCT (show_id, owner_id, user_id, department_id)
);
CREATE INDEX crew_assignments_user_id_idx ON callmaster.crew_assignments (user_id, show_id);
CREATE INDEX crew_assignments_department_id_idx ON callmaster.crew_assignments (department_id, owner_id);

-- Scripts --------------------------------------------------------------------------------------

CREATE TABLE callmaster.scripts (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    show_id           uuid        NOT NULL,
    owner_id          uuid        NOT NULL,
    name              text        NOT NULL,
    notes             text,
    status            text        NOT NULL DEFAULT 'draft',
    start_time        timestamptz,
    end_time          timestamptz,
    actual_start_time timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT scripts_id_owner_key UNIQUE (id, owner_id),
    CONSTRAINT scripts_show_fkey FOREIGN KEY (show_id, owner_id)
        REFERENCES callmaster.shows (id, owner_id) ON DELETE CASCADE,
    CONSTRAINT scripts_name_check CHECK (btrim(name) <> ''),
    CONSTRAINT scripts_status_check CHECK (status IN ('draft', 'copy', 'working', 'final', 'backup')),
    CONSTRAINT scripts_end_check CHECK (end_time >= start_time)
);
CREATE INDEX scripts_show_id_idx ON callmaster.scripts (show_id, owner_id);
CREATE INDEX scripts_owner_id_idx ON callmaster.scripts (owner_id);

CREATE TABLE callmaster.script_elements (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    script_id          uuid        NOT NULL,
    owner_id           uuid        NOT NULL,
    element_type       text        NOT NULL,
    sequence           integer     NOT NULL DEFAULT 0,
    cue_id             text,
    description        text,
    cue_notes          text,
    department_id      uuid,
    parent_element_id  uuid,
    trigger_type       text        NOT NULL DEFAULT 'manual',
    follows_cue_id     text,
    priority           text        NOT NULL DEFAULT 'normal',
    time_offset_ms     bigint      NOT NULL DEFAULT 0,
    duration_ms        bigint,
    fade_in_ms         bigint,
    fade_out_ms        bigint,
    location           text,
    location_details   text,
    custom_color       text,
    group_level        integer     NOT NULL DEFAULT 0,
    is_collapsed       boolean     NOT NULL DEFAULT false,
    is_safety_critical boolean     NOT NULL DEFAULT false,
    safety_notes       text,
    version            integer     NOT NULL DEFAULT 1,
    is_active          boolean     NOT NULL DEFAULT true,
    created_by         uuid        REFERENCES callmaster.users (id) ON DELETE SET NULL,
    updated_by         uuid        REFERENCES callmaster.users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- (script_id, id): target of the in-script references (parent, group membership).
    CONSTRAINT script_elements_script_id_id_key UNIQUE (script_id, id),
    CONSTRAINT script_elements_script_fkey FOREIGN KEY (script_id, owner_id)
        REFERENCES callmaster.scripts (id, owner_id) ON DELETE CASCADE,
    -- A parent lives in the same script; deleting it lifts its children to the top level.
    CONSTRAINT script_elements_parent_fkey FOREIGN KEY (script_id, parent_element_id)
        REFERENCES callmaster.script_elements (script_id, id) ON DELETE SET NULL (parent_element_id),
    CONSTRAINT script_elements_department_fkey FOREIGN KEY (department_id, owner_id)
        REFERENCES callmaster.departments (id, owner_id) ON DELETE SET NULL (department_id),
    CONSTRAINT script_elements_element_type_check CHECK (element_type IN ('cue', 'note', 'group')),
    CONSTRAINT script_elements_sequence_check CHECK (sequence >= 0),
    CONSTRAINT script_elements_not_own_parent_check CHECK (parent_element_id <> id),
    CONSTRAINT script_elements_trigger_type_check
        CHECK (trigger_type IN ('manual', 'time', 'auto', 'follow', 'go', 'standby')),
    CONSTRAINT script_elements_priority_check
        CHECK (priority IN ('critical', 'high', 'normal', 'low', 'optional')),
    CONSTRAINT script_elements_durations_check
        CHECK (duration_ms >= 0 AND fade_in_ms >= 0 AND fade_out_ms >= 0),
    CONSTRAINT script_elements_location_check CHECK (location IN (
        'stage_left', 'stage_right', 'center_stage', 'upstage', 'downstage',
        'upstage_left', 'upstage_right', 'downstage_left', 'downstage_right',
        'fly_gallery', 'booth', 'house', 'backstage', 'wings_left', 'wings_right',
        'grid', 'trap', 'pit', 'lobby', 'dressing_room', 'other')),
    CONSTRAINT script_elements_custom_color_check CHECK (custom_color ~ '^#[0-9A-Fa-f]{6}$'),
    CONSTRAINT script_elements_group_level_check CHECK (group_level >= 0),
    CONSTRAINT script_elements_version_check CHECK (version >= 1)
);
CREATE INDEX script_elements_script_sequence_idx
    ON callmaster.script_elements (script_id, owner_id, sequence);
CREATE INDEX script_elements_owner_id_idx ON callmaster.script_elements (owner_id, id);
CREATE INDEX script_elements_parent_idx
    ON callmaster.script_elements (script_id, parent_element_id) WHERE parent_element_id IS NOT NULL;
CREATE INDEX script_elements_department_idx
    ON callmaster.script_elements (department_id, owner_id) WHERE department_id IS NOT NULL;
CREATE INDEX script_elements_created_by_idx
    ON callmaster.script_elements (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX script_elements_updated_by_idx
    ON callmaster.script_elements (updated_by) WHERE updated_by IS NOT NULL;

-- Supporting rows of an element: all cascade from their element. ------------------------------

CREATE TABLE callmaster.script_element_equipment (
    element_id     uuid        NOT NULL REFERENCES callmaster.script_elements (id) ON DELETE CASCADE,
    equipment_name text        NOT NULL,
    is_required    boolean     NOT NULL DEFAULT true,
    notes          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (element_id, equipment_name),
    CONSTRAINT script_element_equipment_name_check CHECK (btrim(equipment_name) <> '')
);

CREATE TABLE callmaster.script_element_crew_assignments (
    element_id      uuid        NOT NULL REFERENCES callmaster.script_elements (id) ON DELETE CASCADE,
    crew_user_id    uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    assignment_role text,
    is_lead         boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (element_id, crew_user_id)
);
CREATE INDEX script_element_crew_assignments_crew_user_id_idx
    ON callmaster.script_element_crew_assignments (crew_user_id);

CREATE TABLE callmaster.script_element_performer_assignments (
    element_id     uuid        NOT NULL REFERENCES callmaster.script_elements (id) ON DELETE CASCADE,
    performer_id   uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    character_name text,
    notes          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (element_id, performer_id)
);
CREATE INDEX script_element_performer_assignments_performer_id_idx
    ON callmaster.script_element_performer_assignments (performer_id);

CREATE TABLE callmaster.script_element_conditional_rules (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    element_id      uuid        NOT NULL REFERENCES callmaster.script_elements (id) ON DELETE CASCADE,
    condition_type  text        NOT NULL,
    operator        text        NOT NULL,
    condition_value text        NOT NULL,
    description     text,
    is_active       boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT script_element_conditional_rules_condition_type_check
        CHECK (condition_type IN ('weather', 'cast', 'equipment', 'time', 'custom')),
    CONSTRAINT script_element_conditional_rules_operator_check
        CHECK (operator IN ('equals', 'not_equals', 'contains', 'greater_than', 'less_than'))
);
CREATE INDEX script_element_conditional_rules_element_id_idx
    ON callmaster.script_element_conditional_rules (element_id);

-- Group membership: the group and its member are elements of one script (script_id is filled
-- from the group element by trigger when omitted).
CREATE TABLE callmaster.script_element_groups (
    group_id         uuid        NOT NULL,
    child_element_id uuid        NOT NULL,
    script_id        uuid        NOT NULL,
    order_in_group   integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, child_element_id),
    CONSTRAINT script_element_groups_group_fkey FOREIGN KEY (script_id, group_id)
        REFERENCES callmaster.script_elements (script_id, id) ON DELETE CASCADE,
    CONSTRAINT script_element_groups_child_fkey FOREIGN KEY (script_id, child_element_id)
        REFERENCES callmaster.script_elements (script_id, id) ON DELETE CASCADE,
    CONSTRAINT script_element_groups_not_self_check CHECK (group_id <> child_element_id),
    CONSTRAINT script_element_groups_order_check CHECK (order_in_group >= 0)
);
CREATE INDEX script_element_groups_group_idx ON callmaster.script_element_groups (script_id, group_id);
CREATE INDEX script_element_groups_child_idx ON callmaster.script_element_groups (script_id, child_element_id);
CREATE INDEX script_element_groups_child_element_id_idx ON callmaster.script_element_groups (child_element_id);

-- Row-level security on every table (policies: sql/callmaster/010_access.sql). ----------------

ALTER TABLE callmaster.users ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.crew_relationships ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.venues ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.departments ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.shows ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.crew_assignments ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.scripts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.script_elements ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.script_element_equipment ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.script_element_crew_assignments ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.script_element_performer_assignments
    ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.script_element_conditional_rules ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.script_element_groups ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- The API may change only the profile columns of a user row and never deletes users
-- (Clerk-owned columns and status change through SECURITY DEFINER functions).
REVOKE UPDATE, DELETE ON callmaster.users FROM keel_api;
GRANT UPDATE (first_name, last_name, phone, notes, preferences, updated_at) ON callmaster.users TO keel_api;
