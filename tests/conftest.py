# SPDX-License-Identifier: Apache-2.0
"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The folder with real MNIST-like IDX files (sub-folders ``mnist-10k/``, ...).

    ``$CVX_LIFTED_DATA`` when it is set (the variable the package itself reads), else the
    repository-relative ``../shared/data`` (CI clones the repository as a sibling of
    ``shared/``); skip, with the places looked at, when neither exists.
    """
    env = os.environ.get("CVX_LIFTED_DATA", "").strip()
    path = Path(env).expanduser() if env else Path(__file__).parents[2] / "shared" / "data"
    if not path.is_dir():
        origin = "$CVX_LIFTED_DATA" if env else "expected next to the repository"
        pytest.skip(f"data folder {path} is absent ({origin})")
    return path


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """Pin BLAS to one thread: on 2-core machines with xdist, threads only fight each other."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of two worker processes with one thread each (a real cluster's layout).

    Shared by the tests of a module; not the default client (see :func:`dask_active`).
    """
    distributed = pytest.importorskip("distributed", reason="the Dask path needs the [dask] extra")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        memory_limit="2GiB",
    )  # fmt: skip
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client
    cluster.close()


@pytest.fixture
def dask_active(dask_client):
    """The module's Dask client, active for one test (fits find it with ``get_client``)."""
    with dask_client.as_current():
        yield dask_client


#: Test files and tests that take more than about two seconds each on the 2-core CI machine
#: (measured with ``--durations``). They are marked ``slow``: ``pytest -m "not slow"`` is the fast
#: lane (under a minute on 2 cores), the full suite runs everything. A test is named by its
#: function (all its parameters) or by its id with one set of parameters (``name[param]``).
SLOW_FILES = {
    "test_examples.py",
    "test_plugins.py",
    "test_paper.py",
    "test_modelfile_fuzz.py",
    "test_distributed.py",
    "test_distributed_estimator.py",
}
SLOW_TESTS = {
    "test_activations.py": {"test_elementwise_activations_are_monotone"},
    "test_bcd.py": {
        "test_a_compiled_block_over_the_memory_budget_is_refused_with_advice",
        "test_l1_and_custom_penalties_go_through_the_compiled_path",
        "test_lifted_rule_differs_and_agrees_between_paths_for_deep_l2_relu",
        "test_lifted_rule_does_not_depend_on_the_batch",
        "test_numpy_and_cvxpy_backends_give_the_same_iterates",
        "test_objective_never_increases_after_any_block",
        "test_tolerance_time_limit_and_callback_stop_training",
    },
    "test_blocks.py": {
        "test_a_digits_sized_sigmoid_like_network_no_longer_asks_for_gigabytes",
        "test_a_template_block_stays_within_its_estimate[sign]",
        "test_clip_and_leaky_relu_networks_stay_feasible",
        "test_compiled_weight_step_memory_is_linear_in_the_rows_and_within_the_estimate",
        "test_no_block_of_a_random_fit_raises_the_objective",
    },
    "test_cli.py": {
        "test_demo_default_settings_reach_90_percent",
        "test_demo_runs_and_reports_both_accuracies_honestly",
        "test_subprocess_bad_input",
        "test_subprocess_help_of_every_command",
        "test_subprocess_list_and_verify",
        "test_subprocess_train_then_predict",
        "test_the_readme_first_command_writes_the_demo_plot",
        "test_train_on_a_dataset_reports_test_accuracy",
    },
    "test_custom.py": {"test_a_fenchel_young_custom_activation_follows_the_catalogue_sigmoid"},
    "test_datasets.py": {
        "test_fashion_mnist_real_files",
        "test_mnist_10k_real_files",
        "test_the_data_fixture_honours_cvx_lifted_data",
    },
    "test_estimator.py": {
        "test_digits_test_accuracy",
        "test_lifted_prediction_rule",
        "test_pipeline_grid_search_and_clone",
    },
    "test_interrupts.py": {"test_ctrl_c_in_a_real_process"},
    "test_io.py": {"test_sigterm_during_a_save_leaves_no_temporary_file"},
    "test_plot.py": {
        "test_landscape_custom",
        "test_module_imports_without_matplotlib",
        "test_plot_objective_draws_on_given_axes_and_saves",
    },
    "test_torch.py": {
        "test_to_torch_matches_feed_forward",
        "test_train_adam_and_penalty",
        "test_train_reduces_the_loss_and_is_deterministic",
    },
    "test_tune.py": {"test_tune_respects_the_trial_budget_and_is_reproducible"},
    "test_verify.py": {"test_a_closed_form_wrong_on_an_interval_is_caught_for_every_seed"},
}


def pytest_collection_modifyitems(config, items):
    """Mark the tests listed in SLOW_FILES and SLOW_TESTS as ``slow``."""
    for item in items:
        name = item.path.name
        slow = SLOW_TESTS.get(name, ())
        if name in SLOW_FILES or item.originalname in slow or item.name in slow:
            item.add_marker(pytest.mark.slow)
