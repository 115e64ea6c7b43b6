"""GPU and host telemetry: the sampler thread (NVML, psutil) and what the telemetry pane shows of it.
Headless: no textual.
"""
