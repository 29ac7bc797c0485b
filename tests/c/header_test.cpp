// The header compiles as C++11 and its functions link and run from C++.
#include <cstdio>
#include <cstring>
#include <memory>

#include "sdrt.h"

int main() {
    if (sdrt_version_number() != SDRT_VERSION_NUMBER) return 1;
    std::unique_ptr<sdrt_pipeline, decltype(&sdrt_pipeline_free)> pipeline(nullptr, sdrt_pipeline_free);
    sdrt_pipeline *raw = nullptr;
    sdrt_status status = sdrt_pipeline_load("/nonexistent", nullptr, &raw);
    pipeline.reset(raw);
    if (status != SDRT_STATUS_INVALID_MODEL || pipeline) return 1;
    if (std::strcmp(sdrt_status_str(status), "invalid model") != 0) return 1;
    std::puts("header_test: ok");
    return 0;
}
