"""Tests of config.yaml loading, expansion (``${VAR:-default}``, ``${section.key}``) and typed
conversion."""

from pathlib import Path

import pytest
import yaml

from archiver_resources.config import (FHICLIZE_NAMES, ArchiverConfig, expand_document,
                                       expand_env, load_config, parse_fhiclize_generate,
                                       render_default_config, ucondb_folder_creation)
from archiver_resources.errors import ConfigError


def minimal(**sections):
    doc = {
        "source_files": {"run_records_dir": "/daq/run_records"},
        "artdaq_db": {"fcl_conf_dir": "/conf", "database_uri": "filesystemdb:///db/x_archive"},
        "ucon_db": {"server_url": "https://u.example.com:9443/inst/app", "folder_name": "f",
                    "object_name": "configuration", "writer_user": "w",
                    "writer_password": "pw-123"},
    }
    doc.update(sections)
    return doc


def build(doc, env=None):
    return ArchiverConfig.from_mapping(doc, path="config.yaml", environ=env or {})


# --- pass 1: environment ---------------------------------------------------------------------

@pytest.mark.parametrize("text, env, expected", [
    ("${HOME_X}", {"HOME_X": "/h"}, "/h"),
    ("${MISSING}", {}, ""),
    ("${MISSING:-dflt}", {}, "dflt"),
    ("a${EMPTY:-dflt}b", {"EMPTY": ""}, "ab"),                      # set but empty: not default
    ("${A:-${B:-deep}}", {}, "deep"),                                 # nested default
    ("${A:-${B:-deep}}", {"B": "bee"}, "bee"),
    ("${A:-${B:-deep}}", {"A": "ay", "B": "bee"}, "ay"),
    ("${A:-x:-y}", {}, "x:-y"),
    ("keep ${FOO", {"FOO": "no"}, "keep ${FOO"),                      # unclosed: literal
    ("${X}/${FOO", {"X": "x"}, "x/${FOO"),
    ("${work_dir}/a", {"work_dir": "no"}, "${work_dir}/a"),           # lower-case: pass 2
    ("${_X}", {"_X": "no"}, "${_X}"),
    ("${OUTER}", {"OUTER": "${INNER}", "INNER": "in"}, "${INNER}"),    # a value is final text
    ("${A:-/tmp}/${B:-b}", {}, "/tmp/b"),
])
def test_env_expansion(text, env, expected):
    assert expand_env(text, env) == expected


def test_a_value_from_the_environment_is_never_expanded_again():
    env = {"LOOP": "${LOOP}x", "HOME": "/root"}
    assert expand_env("${LOOP}", env) == "${LOOP}x"
    doc = {"app": {"work_dir": "/w"},
           "ucon_db": {"writer_password": "${UCONDB_PASSWORD}", "copy": "${writer_password}",
                       "other": "${UCONDB_PASSWORD:-${app.work_dir}}"}}
    for password in ("ab${HOME}cd", "p${app.work_dir}q", "${work_dir}", "x${HOME:-y}z", "$${}}"):
        out = expand_document(doc, {"UCONDB_PASSWORD": password, "HOME": "/root"})["ucon_db"]
        assert out == {"writer_password": password, "copy": password, "other": password}
    # the default is the file's own text: its references are expanded (once)
    assert expand_document(doc, {})["ucon_db"]["other"] == "/w"


def test_password_with_a_dollar_brace_reaches_the_typed_config(monkeypatch):
    doc = minimal()
    doc["ucon_db"]["writer_password"] = "${UCONDB_PASSWORD:-default}"
    config = build(doc, {"UCONDB_PASSWORD": "ab${HOME}cd", "HOME": "/root"})
    assert config.ucon_db.writer_password == "ab${HOME}cd"
    assert "ab${HOME}cd" in config.secrets()


# --- pass 2: parameter references --------------------------------------------------------------

def test_spec_example_work_dir_default():
    doc = {"app": {"work_dir": "${WORK_DIR:-/tmp/run_record_archiver}",
                   "lock_file": "${work_dir}/.archiver.lock"}}
    assert expand_document(doc, {})["app"]["lock_file"] == "/tmp/run_record_archiver/.archiver.lock"
    out = expand_document(doc, {"WORK_DIR": "/w"})
    assert out["app"] == {"work_dir": "/w", "lock_file": "/w/.archiver.lock"}


def test_param_references():
    doc = {
        "app": {"work_dir": "/w", "batch_size": 5, "flag": True, "nothing": None,
                "chain_a": "${chain_b}!", "chain_b": "${chain_c}?", "chain_c": "${work_dir}"},
        "other": {
            "cross": "${app.work_dir}/x",
            "nonstr": "${app.batch_size}-${app.flag}-${app.nothing}",
            "missing_default": "${app.nope:-fallback}",
            "missing": "${app.nope}",
            "missing_bare": "${zzz}",
            "default_to_first_brace": "${nope:-a${b}",
            "default_stops": "${nope:-x}y}",
            "upper_left": "${app.WORK}",
            "deep": "${app.work_dir.x}",
            "listed": ["${app.work_dir}", 3],
        },
        "reporting": {"smtp_host": "mail.example", "email": {"smtp_host": "${smtp_host}"}},
    }
    out = expand_document(doc, {})
    other = out["other"]
    assert other["cross"] == "/w/x"
    assert other["nonstr"] == "5-True-None"
    assert other["missing_default"] == "fallback"
    assert other["missing"] == "${app.nope}"
    assert other["missing_bare"] == "${zzz}"
    assert other["default_to_first_brace"] == "a${b"    # default runs to the first '}'
    assert other["default_stops"] == "xy}"
    assert other["upper_left"] == "${app.WORK}"   # not a lower-case name: left as written
    assert other["deep"] == "${app.work_dir.x}"  # only one level is flattened
    assert other["listed"] == ["/w", 3]
    assert out["app"]["chain_a"] == "/w?!"
    assert out["reporting"]["email"]["smtp_host"] == "mail.example"
    assert out["app"]["batch_size"] == 5 and out["app"]["flag"] is True


def test_env_default_referencing_a_parameter():
    doc = {"app": {"base": "/b", "work_dir": "${WORK_DIR:-${base}/w}"}}
    assert expand_document(doc, {})["app"]["work_dir"] == "/b/w"


@pytest.mark.parametrize("section, key", [
    ({"a": "${b}", "b": "${a}"}, "app."),
    ({"a": "x${a}"}, "app.a"),
    ({"a": "${c}", "b": "${a}", "c": "${b}"}, "app."),
])
def test_circular_reference(section, key):
    with pytest.raises(ConfigError, match=f"Circular reference detected: {key}"):
        expand_document({"app": section}, {})


def test_circular_reference_via_from_mapping_names_file():
    doc = minimal(app={"work_dir": "${lock_file}", "lock_file": "${work_dir}"})
    with pytest.raises(ConfigError) as err:
        build(doc)
    assert "config.yaml" in str(err.value) and "Circular reference detected: app." in str(err.value)


# --- typed conversion --------------------------------------------------------------------------

def test_defaults():
    config = build(minimal())
    app = config.app
    assert app.work_dir == Path("/tmp/run_record_archiver")
    assert app.lock_file == Path("/tmp/run_record_archiver/.archiver.lock")
    assert app.import_state_file.name == "importer_state.json"
    assert app.migrate_failure_log.name == "migrate_failures.log"
    assert (app.batch_size, app.parallel_workers, app.run_process_retries,
            app.retry_delay_seconds) == (5, 2, 2, 3)
    assert app.log_level == "INFO" and app.log_file is None
    assert app.on_existing == "verify" and app.dagster_home is None
    assert config.source_files.finished_after_seconds == 3600
    assert config.source_files.max_file_bytes == 64 * 1024 * 1024
    assert config.artdaq_db.use_tools is False and config.artdaq_db.remote_host is None
    assert config.artdaq_db.tool_timeout_seconds == 300
    ucon = config.ucon_db
    assert (ucon.timeout_seconds, ucon.verify_tls, ucon.ca_bundle, ucon.retries) == (10, True,
                                                                                      None, 3)
    assert ucon.create_folder is False
    assert config.reporting.email.enabled is False and config.reporting.email.smtp_port == 25
    assert config.carbon.port == 2003 and config.carbon.enabled is False
    assert config.fhiclize_generate == FHICLIZE_NAMES and len(FHICLIZE_NAMES) == 9
    assert config.warnings == ()


def test_work_dir_derives_other_paths():
    config = build(minimal(app={"work_dir": "/w", "batch_size": "7", "log_level": "debug"}))
    assert config.app.import_failure_log == Path("/w/import_failures.log")
    assert config.app.batch_size == 7 and config.app.log_level == "DEBUG"


@pytest.mark.parametrize("app, key", [
    ({"batch_size": "abc"}, "app.batch_size"),
    ({"batch_size": True}, "app.batch_size"),
    ({"batch_size": 0}, "app.batch_size"),
    ({"parallel_workers": 2.5}, "app.parallel_workers"),
    ({"retry_delay_seconds": [1]}, "app.retry_delay_seconds"),
    ({"on_existing": "overwrite"}, "app.on_existing"),
])
def test_wrong_types_name_the_key(app, key):
    with pytest.raises(ConfigError) as err:
        build(minimal(app=app))
    assert err.value.key == key and key in str(err.value) and "config.yaml" in str(err.value)


def test_unknown_log_level_warns():
    config = build(minimal(app={"log_level": "chatty"}))
    assert config.app.log_level == "INFO"
    assert any("log_level" in w for w in config.warnings)


@pytest.mark.parametrize("value, expected, warns", [
    (True, True, False), (False, False, False), (None, False, False), (1, True, False),
    ("true", True, False), ("Yes", True, False),
    ("false", False, True), ("no", False, True), ("0", False, True), ("OFF", False, True),
    (" False ", False, True), ("", False, False),
    ("maybe", True, True),
])
def test_flags(value, expected, warns):
    config = build(minimal(artdaq_db={"fcl_conf_dir": "/c", "database_uri": "x",
                                      "use_tools": value}))
    assert config.artdaq_db.use_tools is expected
    assert any("artdaq_db.use_tools" in w for w in config.warnings) is warns


def test_flag_from_environment_default_string_false():
    doc = minimal(artdaq_db={"fcl_conf_dir": "/c", "database_uri": "x",
                             "use_tools": "${USE_TOOLS:-false}"})
    assert build(doc).artdaq_db.use_tools is False
    assert build(doc, {"USE_TOOLS": "true"}).artdaq_db.use_tools is True


@pytest.mark.parametrize("drop", ["source_files", "artdaq_db", "ucon_db"])
def test_required_top_level_keys(drop):
    doc = minimal()
    del doc[drop]
    with pytest.raises(ConfigError, match=f"Top-level configuration key missing: '{drop}'"):
        build(doc)


@pytest.mark.parametrize("section, key", [
    ("source_files", "run_records_dir"), ("artdaq_db", "fcl_conf_dir"),
    ("artdaq_db", "database_uri"), ("ucon_db", "server_url"), ("ucon_db", "folder_name"),
    ("ucon_db", "object_name"), ("ucon_db", "writer_user"), ("ucon_db", "writer_password"),
])
def test_required_section_keys(section, key):
    doc = minimal()
    del doc[section][key]
    with pytest.raises(ConfigError) as err:
        build(doc)
    assert err.value.key == f"{section}.{key}"


def test_app_is_optional_and_set_but_empty_required_is_error():
    doc = minimal()
    doc["ucon_db"]["writer_password"] = "${UCONDB_PASSWORD:-default}"
    assert build(doc).ucon_db.writer_password == "default"
    with pytest.raises(ConfigError, match="ucon_db.writer_password"):
        build(doc, {"UCONDB_PASSWORD": ""})


@pytest.mark.parametrize("url", ["https://h/inst", "https://h/inst/app/", "https://u:sec@h/x"])
def test_server_url_must_end_with_app(url):
    doc = minimal()
    doc["ucon_db"]["server_url"] = url
    with pytest.raises(ConfigError) as err:
        build(doc)
    assert err.value.key == "ucon_db.server_url" and "sec" not in str(err.value)


def test_deprecated_send_email_on_error_without_email_block():
    config = build(minimal(reporting={"send_email_on_error": True, "recipient_email": "r@x",
                                      "sender_email": "s@x", "smtp_host": "smtp.x",
                                      "smtp_password": "mailpw"}))
    email = config.reporting.email
    assert email.enabled and email.smtp_port == 587 and email.smtp_use_tls is True
    assert email.recipient_email == "r@x" and email.smtp_password == "mailpw"
    assert any(w.startswith("DEPRECATED") for w in config.warnings)


def test_deprecated_key_with_email_block_uses_the_block():
    config = build(minimal(reporting={"send_email_on_error": True,
                                      "email": {"enabled": False, "smtp_host": "h"}}))
    assert config.reporting.email.enabled is False and config.reporting.email.smtp_port == 25
    assert any(w.startswith("DEPRECATED") for w in config.warnings)


@pytest.mark.parametrize("reporting, key", [
    ({"email": {"enabled": True, "sender_email": "s", "smtp_host": "h"}},
     "reporting.email.recipient_email"),
    ({"send_email_on_error": True, "recipient_email": "r", "sender_email": "s"},
     "reporting.smtp_host"),
    ({"slack": {"enabled": True, "channel": "#c"}}, "reporting.slack.bot_token"),
])
def test_enabled_channels_need_their_keys(reporting, key):
    with pytest.raises(ConfigError) as err:
        build(minimal(reporting=reporting))
    assert err.value.key == key


def test_slack_webhook_and_mentions():
    config = build(minimal(reporting={"slack": {"enabled": "yes", "webhook_url":
                                                "https://hooks.example/T/B/X",
                                                "mention_users": "U1, U2,"}}))
    assert config.reporting.slack.enabled and config.reporting.slack.mention_ids == ("U1", "U2")


def test_carbon_enabled_needs_host_and_prefix():
    with pytest.raises(ConfigError, match="carbon.metric_prefix"):
        build(minimal(carbon={"enabled": True, "host": "h"}))
    config = build(minimal(carbon={"enabled": True, "host": "h", "port": "2004",
                                   "metric_prefix": "${EXPERIMENT_NAME:-demo}.ra"}))
    assert config.carbon.port == 2004 and config.carbon.metric_prefix == "demo.ra"


def test_app_fuzz():
    config = build(minimal(app_fuzz={"random_skip_percent": 5, "random_error_retry": "false"}))
    assert config.app_fuzz.random_skip_percent == 5 and config.app_fuzz.random_error_retry is False


@pytest.mark.parametrize("value, expected", [
    (True, True), ("yes", True), ("${CREATE:-false}", False), (False, False)])
def test_ucon_db_create_folder_is_a_flag(value, expected):
    doc = minimal()
    doc["ucon_db"]["create_folder"] = value
    config = build(doc)
    assert config.ucon_db.create_folder is expected
    assert not any("create_folder" in w and "unknown" in w for w in config.warnings)
    assert ucondb_folder_creation(config.ucon_db, {}) is expected


def test_ucondb_folder_creation_from_the_command_line_switch():
    section = build(minimal()).ucon_db
    assert ucondb_folder_creation(section, {"ARCHIVER_UCONDB_CREATE_FOLDER": "1"}) is True
    for value in ("0", "", "yes"):
        assert ucondb_folder_creation(section, {"ARCHIVER_UCONDB_CREATE_FOLDER": value}) is False


def test_unknown_keys_warn_not_fail():
    doc = minimal(extra_section={"a": 1}, app={"batch_sise": 3})
    doc["artdaq_db"]["use_bulkloader"] = True
    config = build(doc)
    text = "\n".join(config.warnings)
    assert "extra_section" in text and "app.batch_sise" in text
    assert "artdaq_db.use_bulkloader" in text


# --- fhiclize_generate ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, FHICLIZE_NAMES),
    (["boot.txt", "metadata", "RunHistory.fcl"], {"boot", "metadata", "RunHistory"}),
    ({"files": ["ranks", "RunHistory2"]}, {"ranks", "RunHistory2"}),
    ({"files": None}, FHICLIZE_NAMES),
    ([], set()),
])
def test_parse_fhiclize_generate(value, expected):
    assert parse_fhiclize_generate(value) == frozenset(expected)


@pytest.mark.parametrize("value", [["boot", "bogus"], "boot", {"file": ["boot"]}, ["runhistory"]])
def test_parse_fhiclize_generate_errors(value):
    with pytest.raises(ConfigError) as err:
        parse_fhiclize_generate(value)
    assert err.value.key == "fhiclize_generate"


def test_fhiclize_generate_in_document():
    config = build(minimal(fhiclize_generate=["boot", "setup.txt"]))
    assert config.fhiclize_generate == frozenset({"boot", "setup"})
    with pytest.raises(ConfigError, match="config.yaml.*fhiclize_generate"):
        build(minimal(fhiclize_generate=["nope"]))


# --- secrets -----------------------------------------------------------------------------------

def test_secrets_never_in_repr_and_listed():
    doc = minimal(reporting={"email": {"smtp_password": "smtp-SECRET"},
                             "slack": {"bot_token": "xoxb-SECRET", "webhook_url":
                                       "https://hooks.example/HOOK-SECRET"}})
    doc["artdaq_db"]["database_uri"] = "mongodb://arch:mongo%40SECRET@db:27017/x_archive"
    doc["ucon_db"]["writer_password"] = "ucon-SECRET"
    config = build(doc)
    for text in (repr(config), str(config), repr(config.ucon_db), str(config.reporting),
                 repr(config.artdaq_db)):
        assert "SECRET" not in text
    assert "mongodb://arch:***@db:27017/x_archive" in repr(config.artdaq_db)
    assert set(config.secrets()) == {"smtp-SECRET", "xoxb-SECRET",
                                     "https://hooks.example/HOOK-SECRET", "ucon-SECRET",
                                     "mongo@SECRET"}
    assert config.ucon_db.writer_password == "ucon-SECRET"   # still usable


def test_config_is_frozen():
    config = build(minimal())
    with pytest.raises(Exception):
        config.app.batch_size = 9  # type: ignore[misc]


# --- files ---------------------------------------------------------------------------------------

def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml.*YAML"):
        load_config(bad)
    for content in ["", "- a\n- b\n", "just a string\n"]:
        bad.write_text(content)
        with pytest.raises(ConfigError, match="bad.yaml"):
            load_config(bad)


def test_load_config_refuses_unsafe_yaml(tmp_path):
    path = tmp_path / "unsafe.yaml"
    path.write_text("app: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(path)


def test_render_default_config_round_trips(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(render_default_config())
    config = load_config(path, environ={})
    assert config.ucon_db.server_url.endswith("/app")
    assert config.app.log_file == Path("/tmp/run_record_archiver/archiver.log")
    assert config.fhiclize_generate == FHICLIZE_NAMES
    assert config.warnings == ()
    path.write_text(render_default_config(
        run_records_dir=tmp_path / "runs", database_uri="filesystemdb:///x/db_archive",
        server_url="http://127.0.0.1:8000/demo/app", writer_password="pw",
        work_dir="${DEMO_DIR:-/tmp/demo}", reporting__email__enabled=True))
    config = load_config(path, environ={"DEMO_DIR": str(tmp_path)})
    assert config.source_files.run_records_dir == tmp_path / "runs"
    assert config.app.lock_file == tmp_path / ".archiver.lock"
    assert config.reporting.email.enabled is True
    assert yaml.safe_load(path.read_text())["app"]["work_dir"] == "${DEMO_DIR:-/tmp/demo}"


def test_render_default_config_overrides_unique_or_explicit_keys():
    assert yaml.safe_load(render_default_config(enabled=True))["carbon"]["enabled"] is True
    with pytest.raises(ValueError):
        render_default_config(no_such_key=1)


def test_artdaq_backend_key_selects_conftoolp_explicitly_and_rejects_unknown(tmp_path):
    from archiver_resources.config import ArchiverConfig
    from archiver_resources.errors import ConfigError

    def doc(**artdaq):
        return {"source_files": {"run_records_dir": str(tmp_path)},
                "artdaq_db": {"fcl_conf_dir": str(tmp_path),
                              "database_uri": "filesystemdb:///x/db_archive", **artdaq},
                "ucon_db": {"server_url": "http://h/app", "folder_name": "f",
                            "object_name": "o", "writer_user": "u", "writer_password": "p"}}

    assert ArchiverConfig.from_mapping(doc()).artdaq_db.backend == "auto"
    assert ArchiverConfig.from_mapping(doc(backend="conftoolp")).artdaq_db.backend == "conftoolp"
    with pytest.raises(ConfigError, match="artdaq_db.backend"):
        ArchiverConfig.from_mapping(doc(backend="oracle"))


# --- per-key errors (pydantic models) ----------------------------------------------------------

# One wrong value in each mapping of config.yaml: the error names the key path, shows the bad
# value and says which type was expected.
WRONG_TYPES = [
    ("app", {"retry_delay_seconds": "soon"}, "app.retry_delay_seconds", "'soon'",
     "expected an integer"),
    ("app", {"log_file": ["a", "b"]}, "app.log_file", "a list", "expected a single value"),
    ("app_fuzz", {"random_error_percent": "lots"}, "app_fuzz.random_error_percent", "'lots'",
     "expected a number"),
    ("source_files", {"run_records_dir": "/r", "max_file_bytes": 1.5},
     "source_files.max_file_bytes", "1.5", "expected an integer"),
    ("artdaq_db", {"fcl_conf_dir": "/c", "database_uri": "x", "use_tools": {"yes": 1}},
     "artdaq_db.use_tools", "a mapping", "expected true or false"),
    ("artdaq_db", {"fcl_conf_dir": "/c", "database_uri": "x", "backend": "oracle"},
     "artdaq_db.backend", "'oracle'", "must be one of"),
    ("ucon_db", {"timeout_seconds": "soon"}, "ucon_db.timeout_seconds", "'soon'",
     "expected a number"),
    ("ucon_db", {"retries": -1}, "ucon_db.retries", "-1", "must be at least 0"),
    ("reporting", {"email": {"smtp_port": "smtp"}}, "reporting.email.smtp_port", "'smtp'",
     "expected an integer"),
    ("reporting", {"slack": {"channel": ["#a", "#b"]}}, "reporting.slack.channel", "a list",
     "expected a single value"),
    ("reporting", {"send_email_on_error": True, "smtp_port": "x"}, "reporting.smtp_port", "'x'",
     "expected an integer"),
    ("reporting", {"send_email_on_error": [True]}, "reporting.send_email_on_error", "a list",
     "expected true or false"),
    ("reporting", {"email": "on"}, "reporting.email", "text", "expected a mapping of keys"),
    ("carbon", {"port": 2003.5}, "carbon.port", "2003.5", "expected an integer"),
    ("fhiclize_generate", ["boot", 7], "fhiclize_generate", "7", "unknown converter"),
]


@pytest.mark.parametrize("section, body, key, shown, expected", WRONG_TYPES,
                         ids=[case[2] for case in WRONG_TYPES])
def test_a_wrong_value_in_each_section_names_key_value_and_type(section, body, key, shown,
                                                                expected):
    doc = minimal()
    if isinstance(body, dict) and isinstance(doc.get(section), dict):
        doc[section].update(body)
    else:
        doc[section] = body
    with pytest.raises(ConfigError) as err:
        build(doc)
    message = str(err.value)
    assert err.value.key == key, message
    assert message.startswith(f"config config.yaml, key '{key}': ")
    assert expected in message and shown in message, message
    assert "\n" not in message


def test_every_problem_is_listed_in_one_error_whose_key_is_the_first():
    doc = minimal(app={"batch_size": "abc"}, carbon={"port": "x"})
    del doc["ucon_db"]["folder_name"]
    with pytest.raises(ConfigError) as err:
        build(doc)
    message = str(err.value)
    assert err.value.key == "app.batch_size"
    assert "expected an integer, got 'abc'" in message
    assert "'ucon_db.folder_name': required key missing or empty" in message
    assert "'carbon.port': expected an integer, got 'x'" in message


@pytest.mark.parametrize("section, body, key", [
    ("app", [1, 2], "app"), ("carbon", "on", "carbon"), ("ucon_db", None, "ucon_db"),
    ("reporting", {"slack": [1]}, "reporting.slack"),
])
def test_a_section_that_is_not_a_mapping_is_named(section, body, key):
    with pytest.raises(ConfigError) as err:
        build(minimal(**{section: body}))
    assert err.value.key == key and "expected a mapping of keys" in str(err.value)


def test_unknown_keys_in_every_section_are_warnings_and_the_rest_loads():
    doc = minimal(app={"batch_size": 4, "colour": "red"}, app_fuzz={"x": 1},
                  reporting={"email": {"smtp_hots": "h"}, "slack": {"chanel": "#c"},
                             "teams": {}},
                  carbon={"prefix": "p"}, fhiclize_generate=None, extra={"a": 1})
    doc["source_files"]["pattern"] = "*"
    doc["artdaq_db"]["use_bulkloader"] = True
    doc["ucon_db"]["password"] = "oops"
    config = build(doc)
    assert config.app.batch_size == 4
    assert sorted(config.warnings) == sorted([
        "unknown top-level key 'extra' ignored",
        "unknown key 'app.colour' ignored",
        "unknown key 'app_fuzz.x' ignored",
        "unknown key 'source_files.pattern' ignored",
        "unknown key 'artdaq_db.use_bulkloader' ignored",
        "unknown key 'ucon_db.password' ignored",
        "unknown key 'reporting.teams' ignored",
        "unknown key 'reporting.email.smtp_hots' ignored",
        "unknown key 'reporting.slack.chanel' ignored",
        "unknown key 'carbon.prefix' ignored",
    ])
    assert not hasattr(config.app, "colour")


def test_empty_values_mean_the_default_as_before():
    config = build(minimal(app={"work_dir": "/w", "lock_file": "", "batch_size": None,
                                "log_level": "", "on_existing": "", "log_file": ""},
                           reporting={"send_email_on_error": False, "smtp_port": None}))
    assert config.app.lock_file == Path("/w/.archiver.lock") and config.app.batch_size == 5
    assert (config.app.log_level, config.app.on_existing, config.app.log_file) == (
        "INFO", "verify", None)
    assert config.reporting.email.smtp_port == 587          # the deprecated form's default
    assert config.reporting.email.smtp_use_tls is True


# --- secrets never in an error -----------------------------------------------------------------

SECRETS = {"UCON": "UconPW-Qx7", "SMTP": "SmtpPW-Qx7", "SLACK": "xoxb-Qx7-tok",
           "HOOK": "https://hooks.example/Qx7HOOK", "MONGO": "MongoPW-Qx7", "URL": "UrlPW-Qx7"}


def secret_doc():
    doc = minimal(reporting={"email": {"smtp_password": "${SMTP_PW}"},
                             "slack": {"bot_token": "${SLACK_TOKEN}",
                                       "webhook_url": "${SLACK_HOOK}"}})
    doc["ucon_db"]["writer_password"] = "${UCONDB_PASSWORD}"
    doc["ucon_db"]["server_url"] = "https://w:${URL_PW}@u.example.com/inst/app"
    doc["artdaq_db"]["database_uri"] = "mongodb://a:${MONGO_PW}@db:27017/x_archive"
    return doc


SECRET_ENV = {"UCONDB_PASSWORD": SECRETS["UCON"], "SMTP_PW": SECRETS["SMTP"],
              "SLACK_TOKEN": SECRETS["SLACK"], "SLACK_HOOK": SECRETS["HOOK"],
              "MONGO_PW": SECRETS["MONGO"], "URL_PW": SECRETS["URL"]}


def _break(doc, where, value):
    node = doc
    *parents, key = where
    for part in parents:
        node = node.setdefault(part, {})
    node[key] = value


@pytest.mark.parametrize("where, value", [
    (("app", "batch_size"), "${UCONDB_PASSWORD}"),              # a secret in a non-secret key
    (("app", "on_existing"), "${SMTP_PW}"),
    (("app_fuzz", "random_skip_percent"), "${SLACK_TOKEN}"),
    (("source_files", "finished_after_seconds"), "${MONGO_PW}"),
    (("artdaq_db", "backend"), "${URL_PW}"),
    (("ucon_db", "timeout_seconds"), "${SLACK_HOOK}"),
    (("ucon_db", "server_url"), "https://w:${URL_PW}@u.example.com/inst/nope"),
    (("ucon_db", "writer_password"), ["${UCONDB_PASSWORD}"]),   # a secret key of a wrong type
    (("reporting", "email", "smtp_password"), {"p": "${SMTP_PW}"}),
    (("reporting", "email", "smtp_port"), "${SMTP_PW}"),
    (("reporting", "slack", "bot_token"), ["${SLACK_TOKEN}"]),
    (("reporting", "slack", "enabled"), "${SLACK_TOKEN}"),      # a warning, not an error
    (("carbon", "port"), "${SLACK_HOOK}"),
    (("fhiclize_generate",), ["${UCONDB_PASSWORD}"]),
])
def test_no_secret_in_any_error_or_warning(where, value):
    doc = secret_doc()
    _break(doc, where, value)
    try:
        config = build(doc, SECRET_ENV)
    except ConfigError as exc:
        texts = [str(exc), repr(exc), exc.reason]
    else:
        texts = list(config.warnings) + [repr(config)]
    for text in texts:
        assert not [name for name, secret in SECRETS.items() if secret in text], text


def test_no_secret_in_the_error_of_a_wrong_type_through_load_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(render_default_config(
        writer_password="${UCONDB_PASSWORD}", reporting__email__smtp_password="${SMTP_PW}",
        server_url="https://w:${URL_PW}@u.example.com/inst/app", batch_size="${SMTP_PW}",
        database_uri="mongodb://a:${MONGO_PW}@db:27017/x_archive"))
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=SECRET_ENV)
    assert err.value.key == "app.batch_size" and "expected an integer" in str(err.value)
    assert not [s for s in SECRETS.values() if s in str(err.value)], str(err.value)


# --- single-pass expansion, end to end -----------------------------------------------------------

def test_values_from_the_environment_reach_every_key_as_written(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(render_default_config(
        writer_password="${UCONDB_PASSWORD}", reporting__email__smtp_password="${SMTP_PW:-unused}",
        writer_user="${UCONDB_USER:-${app.work_dir}}", work_dir="${WORK_DIR}",
        metric_prefix="${work_dir}.x"))
    env = {"UCONDB_PASSWORD": "ab${HOME}cd", "SMTP_PW": "${work_dir}", "HOME": "/root",
           "UCONDB_USER": "u${ucon_db.folder_name}", "WORK_DIR": "/w${HOME:-h}"}
    config = load_config(path, environ=env)
    assert config.ucon_db.writer_password == "ab${HOME}cd"
    assert config.reporting.email.smtp_password == "${work_dir}"
    assert config.ucon_db.writer_user == "u${ucon_db.folder_name}"
    assert config.app.work_dir == Path("/w${HOME:-h}")
    assert config.app.lock_file == Path("/w${HOME:-h}/.archiver.lock")  # file reference: once
    # a parameter reference in the file is expanded, but not what the referenced key got from
    # the environment (carbon.metric_prefix refers to carbon.work_dir, which does not exist)
    assert config.carbon.metric_prefix == "${work_dir}.x"
    assert set(config.secrets()) >= {"ab${HOME}cd", "${work_dir}"}
