// Test support only, never shipped: lets the real OpenVINO plugin execution provider run on a
// non-Intel CPU, so the OpenVINO tests run for real on AMD build hosts.
//
// onnxruntime-ep-openvino 1.8.1 offers a device only for hardware whose vendor id is 0x8086, and
// ONNX Runtime reads the CPU's vendor from CPUID, so on an AMD host the plugin registers but offers
// nothing. OpenVINO's CPU plugin itself runs on any x86-64 with AVX2. This library is registered in
// the plugin's place (OPENVINO_EP_LIBRARY); it loads the real plugin (SIGHTLINE_OPENVINO_REAL_PLUGIN)
// and hands it a copy of ONNX Runtime's API table in which the two hardware-vendor getters say
// "Intel" for CPUs. Everything else is the real plugin calling the real ONNX Runtime.
//
// The table indices are those of OrtApi in ONNX Runtime 1.31 (ort-sys 2.0.0-rc.15, counted field by
// field): HardwareDevice_Type 307, HardwareDevice_VendorId 308, HardwareDevice_Vendor 309.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// API_LEN: the entries of OrtApi in 1.31 (the copy must stay inside the real table).
enum { API_LEN = 428, TYPE = 307, VENDOR_ID = 308, VENDOR = 309, CPU_TYPE = 0 };

typedef struct {
    const void *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

typedef void *(*CreateEpFactoriesFn)(const char *, const OrtApiBase *, const void *, void **, size_t, size_t *);
typedef void *(*ReleaseEpFactoryFn)(void *);

static const OrtApiBase *real_base;
static OrtApiBase shim_base;
static void *api_copy[API_LEN];
static int (*real_type)(const void *);
static uint32_t (*real_vendor_id)(const void *);
static const char *(*real_vendor)(const void *);
static void *plugin;

static uint32_t vendor_id(const void *device) {
    return real_type(device) == CPU_TYPE ? 0x8086 : real_vendor_id(device);
}

static const char *vendor(const void *device) {
    return real_type(device) == CPU_TYPE ? "Intel" : real_vendor(device);
}

static const void *get_api(uint32_t version) {
    void **api = (void **)real_base->GetApi(version);
    if (!api) return NULL;
    memcpy(api_copy, api, sizeof(void *) * API_LEN);
    real_type = (int (*)(const void *))api[TYPE];
    real_vendor_id = (uint32_t (*)(const void *))api[VENDOR_ID];
    real_vendor = (const char *(*)(const void *))api[VENDOR];
    api_copy[VENDOR_ID] = (void *)vendor_id;
    api_copy[VENDOR] = (void *)vendor;
    return api_copy;
}

static void *real_symbol(const char *name) {
    if (!plugin) {
        const char *path = getenv("SIGHTLINE_OPENVINO_REAL_PLUGIN");
        plugin = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        if (!plugin) {
            fprintf(stderr, "openvino_vendor_shim: cannot load SIGHTLINE_OPENVINO_REAL_PLUGIN=%s: %s\n",
                    path ? path : "(unset)", dlerror());
            return NULL;
        }
    }
    return dlsym(plugin, name);
}

void *CreateEpFactories(const char *name, const OrtApiBase *base, const void *logger, void **factories,
                        size_t max, size_t *count) {
    CreateEpFactoriesFn create = (CreateEpFactoriesFn)real_symbol("CreateEpFactories");
    if (!create) abort();
    real_base = base;
    shim_base.GetApi = get_api;
    shim_base.GetVersionString = base->GetVersionString;
    return create(name, &shim_base, logger, factories, max, count);
}

void *ReleaseEpFactory(void *factory) {
    ReleaseEpFactoryFn release = (ReleaseEpFactoryFn)real_symbol("ReleaseEpFactory");
    return release ? release(factory) : NULL;
}
