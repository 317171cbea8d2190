"""Figures that can be read: units on the axes, legends beside the data, nothing cut off, readable headers."""

import matplotlib.image as mpimg
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analog_train.devices.presets import compose_device
from analog_train.devices.response import pulse_response
from analog_train.plots.common import plt
from analog_train.plots.device_response import plot_device_response, save_figure
from analog_train.plots.table import header, plot_cost_table


def overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def renderer_of(fig):
    FigureCanvasAgg(fig).draw()
    return fig.canvas.get_renderer()


def legends_off_the_data(fig):
    """Every legend lies outside every axes' data area."""
    renderer = renderer_of(fig)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(overlaps(box, ax.get_window_extent(renderer)) for ax in fig.axes), legend


def test_device_response_has_units_legends_off_the_data_and_is_not_cut(tmp_path):
    df = pd.concat([pulse_response(compose_device(name), 2, 20, 20, 40, preset=name) for name in ("reram", "ecram")])
    fig = plot_device_response(df)
    for ax in fig.axes:
        assert "[" in ax.get_ylabel() and ax.get_xlabel()  # units (pulse numbers have none)
    legends_off_the_data(fig)
    png = save_figure(fig, tmp_path / "response", ("png",))[0]
    tight = fig.get_tightbbox(renderer_of(fig))
    height, width = mpimg.imread(png).shape[:2]
    # bbox_inches="tight": the image is the box around every artist (titles, outside legends) plus 0.1 inch a side
    assert abs(width - (tight.width + 0.2) * 150) <= 3 and abs(height - (tight.height + 0.2) * 150) <= 3


def test_table_headers_are_words_with_units(tmp_path):
    assert header("time_ns") == "time\n[ns]" and header("fp_ops") == "FP ops" and header("algorithm") == "algorithm"
    pd.DataFrame({"algorithm": ["SGD"], "time_ns": [30.9], "storage_bytes": [1024]}).to_csv(tmp_path / "t.csv",
                                                                                            index=False)
    captured = {}
    original = plt.Axes.table

    def spy(ax, *args, **kwargs):
        captured.update(kwargs)
        return original(ax, *args, **kwargs)

    plt.Axes.table = spy
    try:
        plot_cost_table(tmp_path / "t.csv", tmp_path / "t")
    finally:
        plt.Axes.table = original
    assert captured["colLabels"] == ["algorithm", "time\n[ns]", "storage\n[bytes]"]
