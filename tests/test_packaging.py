"""The dependency pins: pyproject.toml names the packages, the Makefile pins torch for the
install, and bentofile.yaml pins what the Bento installs. The versions the tests ran with are
the truth; these tests fail when a pin drifts from them, so the three files cannot disagree."""

import re
from importlib.metadata import version

import yaml
from helpers import ROOT


def _bento_pins() -> dict[str, str]:
    packages = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["python"]["packages"]
    return dict(p.split("==") for p in packages)


def test_every_bento_pin_is_the_installed_version():
    drift = {name: (pin, version(name)) for name, pin in _bento_pins().items() if version(name).split("+")[0] != pin}
    assert drift == {}, "bentofile.yaml pins differ from the installed versions (pin, installed): " + repr(drift)


def test_the_makefile_installs_the_torch_the_bento_pins():
    makefile = (ROOT / "Makefile").read_text()
    assert re.findall(r"torch==([\d.]+)", makefile) == [_bento_pins()["torch"]]


def test_the_bento_pins_only_packages_the_project_depends_on():
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = {re.split(r"[<>=!~\[ ]", d.strip().strip('",'))[0].lower()
                for d in re.findall(r'^\s+"([^"]+)",?\s*(?:#.*)?$', pyproject, re.M)}
    # tokenizers and safetensors come with transformers; the Bento pins them so the image matches.
    assert set(_bento_pins()) - declared <= {"tokenizers", "safetensors"}


def test_the_bento_sets_the_offline_and_openmp_environment_of_the_service():
    from model.runtime import ENV, OPENMP

    envs = {e["name"]: e["value"] for e in yaml.safe_load((ROOT / "bentofile.yaml").read_text())["envs"]}
    assert {k: envs.get(k) for k in {**ENV, **OPENMP}} == {**ENV, **OPENMP}


def test_the_service_serves_on_uvloop_and_httptools():
    """BentoML's worker leaves uvicorn's loop and HTTP parser on "auto" (off Windows), which takes
    uvloop and httptools when they are installed: the dependencies must be there."""
    import uvloop
    from uvicorn.loops.auto import auto_loop_factory
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert AutoHTTPProtocol is HttpToolsProtocol
    loop = auto_loop_factory()()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
