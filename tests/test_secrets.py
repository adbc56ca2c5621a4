"""rt.secret: Colab userdata, Kaggle UserSecretsClient, environment, .env — and values that never
show up in printed output. Host clients are stand-ins at the package boundary."""
from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import traceback

import pytest

from portarun.errors import PortarunError, SecretNotFoundError, SecretsFileError
from portarun.secrets import Secret
from portarun.testing import simulate

VALUE = "s3cr3t-VALUE-7f1c9e"  # distinctive, so any leak is found by substring


class SecretNotFoundErrorStandIn(Exception):
    pass


SecretNotFoundErrorStandIn.__name__ = "SecretNotFoundError"  # as google.colab.userdata names it


class NotebookAccessError(Exception):
    pass


class BackendError(Exception):
    pass


def colab_userdata(store: dict[str, str], denied: frozenset[str] = frozenset()):
    def get(key: str) -> str:
        if key in denied:
            raise NotebookAccessError(f"Notebook does not have access to secret {key}")
        if key not in store:
            raise SecretNotFoundErrorStandIn(f"Secret {key} does not exist.")
        return store[key]

    return get


def kaggle_client(store: dict[str, str]):
    class UserSecretsClient:
        def get_secret(self, label: str) -> str:
            if label not in store:
                raise BackendError(f"Unexpected response from the service. Response: {{'errors': ['{label}']}}")
            return store[label]

    return UserSecretsClient


def test_colab_userdata_in_the_kernel(tmp_path):
    with simulate("colab", root=tmp_path / "h", modules=["google.colab.userdata"], env={"HF_TOKEN": "from-env"}) as rt:
        sys.modules["google.colab.userdata"].get = colab_userdata({"HF_TOKEN": VALUE})
        secret = rt.secret("HF_TOKEN")
        assert secret.reveal() == VALUE and secret.source == "colab"


def test_colab_secret_without_notebook_access_is_explained(tmp_path):
    with simulate("colab", root=tmp_path / "h", modules=["google.colab.userdata"]) as rt:
        sys.modules["google.colab.userdata"].get = colab_userdata({}, denied=frozenset({"HF_TOKEN"}))
        with pytest.raises(SecretNotFoundError, match="Notebook access"):
            rt.secret("HF_TOKEN")


def test_colab_userdata_is_not_called_from_a_child_process(tmp_path):
    with simulate("colab", root=tmp_path / "h", modules=["google.colab.userdata"], kernel=False,
                  env={"HF_TOKEN": VALUE}) as rt:
        sys.modules["google.colab.userdata"].get = lambda key: pytest.fail("userdata needs the kernel")
        assert rt.secret("HF_TOKEN").source == "env"
        with pytest.raises(SecretNotFoundError) as info:
            rt.secret("MISSING")
    assert "not inside the notebook kernel" in str(info.value) and "key icon" in str(info.value)


def test_kaggle_user_secrets(tmp_path):
    with simulate("kaggle", root=tmp_path / "h") as rt:
        sys.modules["kaggle_secrets"].UserSecretsClient = kaggle_client({"WANDB_API_KEY": VALUE})
        secret = rt.secret("WANDB_API_KEY")
        assert secret.reveal() == VALUE and secret.source == "kaggle"
        with pytest.raises(SecretNotFoundError) as info:
            rt.secret("OTHER")
    text = str(info.value)
    assert "kaggle: not found" in text and "Add-ons → Secrets" in text and "key icon" not in text


def test_kaggle_service_failure_falls_through_to_env(tmp_path):
    def broken():
        raise ConnectionError("Timeout error trying to communicate with service.")

    with simulate("kaggle", root=tmp_path / "h", env={"TOKEN": VALUE}) as rt:
        sys.modules["kaggle_secrets"].UserSecretsClient = broken
        assert rt.secret("TOKEN").source == "env"
        with pytest.raises(SecretNotFoundError, match="failed with ConnectionError"):
            rt.secret("NOPE")


def test_environment_then_dotenv(tmp_path):
    root = tmp_path / "h"
    root.mkdir()
    (root / ".env").write_text(f'# project secrets\nAPI_TOKEN="{VALUE}"\nexport BOTH=from-file\n')
    with simulate("local", root=root, env={"BOTH": "from-env"}) as rt:
        assert rt.secret("API_TOKEN").reveal() == VALUE and rt.secret("API_TOKEN").source == "dotenv"
        assert rt.secret("BOTH").reveal() == "from-env"


def test_dotenv_without_python_dotenv_says_so(tmp_path, monkeypatch):
    root = tmp_path / "h"
    root.mkdir()
    (root / ".env").write_text(f"API_TOKEN={VALUE}\n")
    monkeypatch.setitem(sys.modules, "dotenv", None)  # makes `import dotenv` fail
    with simulate("local", root=root) as rt:
        with pytest.raises(SecretNotFoundError, match="pip install python-dotenv") as info:
            rt.secret("API_TOKEN")
    assert VALUE not in str(info.value)


def test_missing_secret_says_where_it_looked_and_how_to_add_it(tmp_path):
    with simulate("local", root=tmp_path / "h") as rt:
        with pytest.raises(SecretNotFoundError) as info:
            rt.secret("HF_TOKEN")
        assert rt.secret("HF_TOKEN", default=None) is None
        fallback = rt.secret("HF_TOKEN", default="anonymous")
        assert fallback.reveal() == "anonymous" and fallback.source == "default"
    text = str(info.value)
    for part in ("env: not found", "dotenv: skipped", "export HF_TOKEN=...", ".env"):
        assert part in text
    # A laptop has no host secret store: Colab's and Kaggle's belong to their providers.
    assert "colab" not in text and "kaggle" not in text and "key icon" not in text


def test_a_secret_never_prints_its_value(caplog):
    secret = Secret("API_TOKEN", VALUE, "env")
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("token %s %r", secret, secret)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>60}", "%s" % secret,
             str([secret]), str({"k": secret}), caplog.text]
    assert all(VALUE not in s for s in shown)
    assert repr(secret) == "Secret('API_TOKEN', source='env', value=***)"
    with pytest.raises(TypeError) as info:
        pickle.dumps(secret)
    assert VALUE not in str(info.value)
    assert secret == Secret("API_TOKEN", VALUE, "colab") and secret != Secret("API_TOKEN", "other", "env")


def test_values_absent_from_portarun_info(tmp_path):
    """``portarun info --json`` and the text report, run for real with secrets in the
    environment (credential-named and plainly named) and in .env, never show a value."""
    (tmp_path / ".env").write_text(f"DOTENV_SECRET={VALUE}-dotenv\n")
    env = {**os.environ, "KAGGLE_KEY": VALUE + "-kaggle", "HF_TOKEN": VALUE + "-hf", "PLAIN_NAME": VALUE + "-plain",
           "KAGGLE_USER_SECRETS_TOKEN": VALUE + "-jwt", "PORTARUN_PROGRESS": "0"}
    for args in (["info", "--json"], ["info", "--explain"]):
        out = subprocess.run([sys.executable, "-m", "portarun", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert VALUE not in out.stdout and VALUE not in out.stderr
    json.loads(subprocess.run([sys.executable, "-m", "portarun", "info", "--json"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120).stdout)


def test_lookup_in_a_subprocess_keeps_values_out_of_tracebacks(tmp_path):
    code = ("import portarun; rt = portarun.detect(); s = rt.secret('API_TOKEN'); print(s); print(repr(s)); "
            "rt.secret('MISSING_ONE')")
    env = {**os.environ, "API_TOKEN": VALUE}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and "SecretNotFoundError" in out.stderr
    assert VALUE not in out.stdout + out.stderr
    assert "Secret('API_TOKEN', source='env', value=***)" in out.stdout


def test_secret_name_must_be_a_string(tmp_path):
    with simulate("local", root=tmp_path / "h") as rt:
        with pytest.raises(SecretNotFoundError, match="non-empty"):
            rt.secret("")


def test_dotenv_that_is_not_utf8_names_the_file_and_line_never_the_content(tmp_path):
    """One Latin-1 byte in ``.env``: python-dotenv's UnicodeDecodeError would carry the whole
    file (every other secret in it) in its ``repr`` and ``object``."""
    root = tmp_path / "h"
    root.mkdir()
    (root / ".env").write_bytes(f"API_TOKEN={VALUE}\n# caf\xe9 comment\nOTHER=x\n".encode("latin-1"))
    with simulate("local", root=root) as rt:
        with pytest.raises(SecretsFileError) as info:
            rt.secret("NOT_IN_ENV_ANYWHERE")
        with pytest.raises(SecretsFileError):  # a broken .env is reported, not skipped, even with a default
            rt.secret("NOT_IN_ENV_ANYWHERE", default=None)
    error = info.value
    assert isinstance(error, PortarunError)
    assert str(root / ".env") in str(error) and "line 2" in str(error) and "0xe9" in str(error)
    shown = [str(error), repr(error), repr(error.args), repr(error.__cause__), repr(error.__context__),
             *traceback.format_exception(error)]
    assert all(VALUE not in text for text in shown)
    assert error.__cause__ is None and error.__context__ is None


def test_dotenv_with_a_bom_and_crlf_is_read(tmp_path):
    root = tmp_path / "h"
    root.mkdir()
    (root / ".env").write_bytes(f"\ufeffAPI_TOKEN={VALUE}\r\nOTHER=é\r\n".encode())
    with simulate("local", root=root) as rt:
        assert rt.secret("API_TOKEN").reveal() == VALUE and rt.secret("OTHER").reveal() == "é"


def test_an_oversized_dotenv_is_refused_unread(tmp_path, monkeypatch):
    import portarun.secrets

    root = tmp_path / "h"
    root.mkdir()
    (root / ".env").write_text(f"API_TOKEN={VALUE}\n" + "#" * 200 + "\n")
    monkeypatch.setattr(portarun.secrets, "ENV_FILE_LIMIT", 100)
    with simulate("local", root=root) as rt:
        with pytest.raises(SecretsFileError, match="too large") as info:
            rt.secret("API_TOKEN")
    assert VALUE not in repr(info.value)
