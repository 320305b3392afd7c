-- Row triggers of CallMaster tables: updated_at upkeep, and the tenant key (owner_id) of child
-- rows copied from their parent when an INSERT leaves it out, so a DBA's minimal INSERT works.
-- The composite foreign keys then guarantee the copy matches the parent.

CREATE OR REPLACE FUNCTION callmaster.touch_updated_at()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT keel.keeps_updated_at() THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION callmaster.touch_updated_at() IS
    'Trigger: sets updated_at to now() on UPDATE when the statement did not set it itself, except during a '
    'maintenance write (keel.keeps_updated_at()). No errors.';

CREATE OR REPLACE FUNCTION callmaster.fill_owner_from_show()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    SELECT s.owner_id INTO NEW.owner_id FROM callmaster.shows AS s WHERE s.id = NEW.show_id;
    IF NEW.owner_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('insert into %I.%I: show %s does not exist', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                             coalesce(NEW.show_id::text, 'NULL')),
            DETAIL = format('Key (show_id)=(%s) is not present in table "shows".', NEW.show_id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION callmaster.fill_owner_from_show() IS
    'Trigger (crew_assignments, scripts): BEFORE INSERT with owner_id NULL, copies the owner of show_id. '
    'Errors: 23503 when the show does not exist (or is not visible to the caller).';

CREATE OR REPLACE FUNCTION callmaster.fill_owner_from_script()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    SELECT s.owner_id INTO NEW.owner_id FROM callmaster.scripts AS s WHERE s.id = NEW.script_id;
    IF NEW.owner_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('insert into %I.%I: script %s does not exist', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                             coalesce(NEW.script_id::text, 'NULL')),
            DETAIL = format('Key (script_id)=(%s) is not present in table "scripts".', NEW.script_id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION callmaster.fill_owner_from_script() IS
    'Trigger (script_elements): BEFORE INSERT with owner_id NULL, copies the owner of script_id. '
    'Errors: 23503 when the script does not exist (or is not visible to the caller).';

CREATE OR REPLACE FUNCTION callmaster.fill_group_script_id()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    SELECT e.script_id INTO NEW.script_id FROM callmaster.script_elements AS e WHERE e.id = NEW.group_id;
    IF NEW.script_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('group element %s does not exist', coalesce(NEW.group_id::text, 'NULL')),
            DETAIL = format('Key (group_id)=(%s) is not present in table "script_elements".', NEW.group_id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION callmaster.fill_group_script_id() IS
    'Trigger (script_element_groups): BEFORE INSERT with script_id NULL, copies the script of the group '
    'element. Errors: 23503 when the group element does not exist (or is not visible to the caller).';

CREATE OR REPLACE TRIGGER users_touch_updated_at
    BEFORE UPDATE ON callmaster.users
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
CREATE OR REPLACE TRIGGER crew_relationships_touch_updated_at
    BEFORE UPDATE ON callmaster.crew_relationships
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
-- Only the manager's columns: the invitee declining must not show on the manager's side (updated_at).
CREATE OR REPLACE TRIGGER crew_invitations_touch_updated_at
    BEFORE UPDATE OF notes, is_active ON callmaster.crew_invitations
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
CREATE OR REPLACE TRIGGER venues_touch_updated_at
    BEFORE UPDATE ON callmaster.venues
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
CREATE OR REPLACE TRIGGER departments_touch_updated_at
    BEFORE UPDATE ON callmaster.departments
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
CREATE OR REPLACE TRIGGER shows_touch_updated_at
    BEFORE UPDATE ON callmaster.shows
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
CREATE OR REPLACE TRIGGER crew_assignments_touch_updated_at
    BEFORE UPDATE ON callmaster.crew_assignments
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
CREATE OR REPLACE TRIGGER scripts_touch_updated_at
    BEFORE UPDATE ON callmaster.scripts
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();
CREATE OR REPLACE TRIGGER script_elements_touch_updated_at
    BEFORE UPDATE ON callmaster.script_elements
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION callmaster.touch_updated_at();

CREATE OR REPLACE TRIGGER crew_assignments_fill_owner
    BEFORE INSERT ON callmaster.crew_assignments
    FOR EACH ROW WHEN (NEW.owner_id IS NULL)
    EXECUTE FUNCTION callmaster.fill_owner_from_show();
CREATE OR REPLACE TRIGGER scripts_fill_owner
    BEFORE INSERT ON callmaster.scripts
    FOR EACH ROW WHEN (NEW.owner_id IS NULL)
    EXECUTE FUNCTION callmaster.fill_owner_from_show();
CREATE OR REPLACE TRIGGER script_elements_fill_owner
    BEFORE INSERT ON callmaster.script_elements
    FOR EACH ROW WHEN (NEW.owner_id IS NULL)
    EXECUTE FUNCTION callmaster.fill_owner_from_script();
CREATE OR REPLACE TRIGGER script_element_groups_fill_script
    BEFORE INSERT ON callmaster.script_element_groups
    FOR EACH ROW WHEN (NEW.script_id IS NULL)
    EXECUTE FUNCTION callmaster.fill_group_script_id();
