"""brackit.envs: MuJoCo's settotalmass deprecation is dropped, every other MuJoCo warning reaches Python."""

from __future__ import annotations

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from brackit import envs  # noqa: E402


def test_halfcheetah_builds_without_the_settotalmass_paragraph(capfd: pytest.CaptureFixture[str]) -> None:
    env = envs.make("HalfCheetah-v5")
    env.close()
    captured = capfd.readouterr()
    assert "settotalmass" not in captured.out + captured.err
    assert mujoco.get_mju_user_warning() is not None


def test_other_mujoco_warnings_become_python_warnings() -> None:
    assert envs.install_mujoco_warning_filter()
    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint type='slide'/><geom size='0.1'/></body></worldbody></mujoco>"
    )
    data = mujoco.MjData(model)
    data.qpos[:] = np.nan
    with pytest.warns(envs.MujocoWarning, match="(?i)nan"):
        mujoco.mj_step(model, data)
