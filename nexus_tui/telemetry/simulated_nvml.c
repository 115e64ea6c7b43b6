/* A stand-in for the NVIDIA driver's libnvidia-ml.so.1, loaded by the real nvidia-ml-py, so the GPU
 * paths (the queue's free GPUs, the telemetry) are tested, and `nexus demo --simulate-gpus N` shown,
 * on machines without a GPU (built with gcc by nexus_tui/telemetry/simulate.py).
 *
 * Without $NEXUS_FAKE_NVML, init fails as a missing driver does (NVML_ERROR_LIBRARY_NOT_FOUND).
 * Every call re-reads the text file named by $NEXUS_FAKE_NVML, so a test changes the GPUs by
 * rewriting it. Lines:
 *   gpu  NAME UTIL_PERCENT MEM_USED_BYTES MEM_TOTAL_BYTES TEMP_C POWER_MW POWER_LIMIT_MW
 *   proc GPU_INDEX PID USED_BYTES
 * GPUs are numbered in the order of their lines. No file (or no gpu line): zero GPUs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GPUS 16
#define MAX_PROCS 256
typedef int nvmlReturn_t;
enum { OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, INSUFFICIENT_SIZE = 7,
       LIBRARY_NOT_FOUND = 12 };

typedef struct { char name[64]; unsigned util; unsigned long long used, total; unsigned temp, power, limit; } gpu_t;
typedef struct { unsigned gpu, pid; unsigned long long used; } proc_t;
typedef struct { unsigned pid; unsigned long long usedGpuMemory; unsigned gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned gpu, memory; } nvmlUtilization_t;

static gpu_t gpus[MAX_GPUS];
static proc_t procs[MAX_PROCS];
static int n_gpus, n_procs, initialized;

static void load(void) {
    n_gpus = n_procs = 0;
    const char *path = getenv("NEXUS_FAKE_NVML");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        gpu_t g; proc_t p;
        if (n_gpus < MAX_GPUS && sscanf(line, "gpu %63s %u %llu %llu %u %u %u", g.name, &g.util, &g.used, &g.total,
                                        &g.temp, &g.power, &g.limit) == 7)
            gpus[n_gpus++] = g;
        else if (n_procs < MAX_PROCS && sscanf(line, "proc %u %u %llu", &p.gpu, &p.pid, &p.used) == 3)
            procs[n_procs++] = p;
    }
    fclose(f);
}

static gpu_t *dev(void *handle) {
    long i = (long)handle - 1;
    load();
    return (initialized && i >= 0 && i < n_gpus) ? &gpus[i] : NULL;
}

static nvmlReturn_t init(void) {
    if (!getenv("NEXUS_FAKE_NVML")) return LIBRARY_NOT_FOUND;
    initialized = 1;
    return OK;
}
nvmlReturn_t nvmlInitWithFlags(unsigned flags) { (void)flags; return init(); }
nvmlReturn_t nvmlInit_v2(void) { return init(); }
nvmlReturn_t nvmlInit(void) { return init(); }
nvmlReturn_t nvmlShutdown(void) { initialized = 0; return OK; }
const char *nvmlErrorString(nvmlReturn_t r) { return r == OK ? "Success" : "fake NVML error"; }
nvmlReturn_t nvmlSystemGetDriverVersion(char *out, unsigned len) { snprintf(out, len, "999.0-fake"); return OK; }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count) {
    if (!initialized) return UNINITIALIZED;
    load();
    *count = (unsigned)n_gpus;
    return OK;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, void **handle) {
    load();
    if (!initialized || index >= (unsigned)n_gpus) return INVALID_ARGUMENT;
    *handle = (void *)(long)(index + 1);
    return OK;
}
nvmlReturn_t nvmlDeviceGetName(void *h, char *name, unsigned len) {
    gpu_t *g = dev(h);
    if (!g) return INVALID_ARGUMENT;
    snprintf(name, len, "%s", g->name);
    for (char *c = name; *c; c++) if (*c == '_') *c = ' ';
    return OK;
}
nvmlReturn_t nvmlDeviceGetUtilizationRates(void *h, nvmlUtilization_t *u) {
    gpu_t *g = dev(h);
    if (!g) return INVALID_ARGUMENT;
    u->gpu = g->util; u->memory = g->total ? (unsigned)(100 * g->used / g->total) : 0;
    return OK;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    gpu_t *g = dev(h);
    if (!g) return INVALID_ARGUMENT;
    m->total = g->total; m->used = g->used; m->free = g->total > g->used ? g->total - g->used : 0;
    return OK;
}
nvmlReturn_t nvmlDeviceGetTemperature(void *h, int sensor, unsigned *t) {
    gpu_t *g = dev(h);
    (void)sensor;
    if (!g) return INVALID_ARGUMENT;
    *t = g->temp;
    return OK;
}
nvmlReturn_t nvmlDeviceGetPowerUsage(void *h, unsigned *mw) {
    gpu_t *g = dev(h);
    if (!g) return INVALID_ARGUMENT;
    *mw = g->power;
    return OK;
}
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned *mw) {
    gpu_t *g = dev(h);
    if (!g) return INVALID_ARGUMENT;
    *mw = g->limit;
    return OK;
}
nvmlReturn_t nvmlDeviceGetClockInfo(void *h, int type, unsigned *mhz) { (void)h; (void)type; (void)mhz; return NOT_SUPPORTED; }
nvmlReturn_t nvmlDeviceGetFanSpeed(void *h, unsigned *pct) { (void)h; (void)pct; return NOT_SUPPORTED; }

static nvmlReturn_t running(void *h, unsigned *count, nvmlProcessInfo_t *infos) {
    gpu_t *g = dev(h);
    if (!g) return INVALID_ARGUMENT;
    unsigned index = (unsigned)((long)h - 1), n = 0;
    for (int i = 0; i < n_procs; i++) n += procs[i].gpu == index;
    if (n == 0) { *count = 0; return OK; }
    if (!infos || *count < n) { *count = n; return INSUFFICIENT_SIZE; }
    unsigned k = 0;
    for (int i = 0; i < n_procs; i++) {
        if (procs[i].gpu != index) continue;
        infos[k].pid = procs[i].pid; infos[k].usedGpuMemory = procs[i].used;
        infos[k].gpuInstanceId = infos[k].computeInstanceId = 0xFFFFFFFF;
        k++;
    }
    *count = n;
    return OK;
}
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned *c, nvmlProcessInfo_t *p) { return running(h, c, p); }
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(void *h, unsigned *c, nvmlProcessInfo_t *p) { return running(h, c, p); }
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(void *h, unsigned *c, nvmlProcessInfo_t *p) {
    (void)h; (void)p; *c = 0; return OK;
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(void *h, unsigned *c, nvmlProcessInfo_t *p) {
    (void)h; (void)p; *c = 0; return OK;
}
