//! scheduler_config.json, then every sampler built from it for a step count the input picks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&steps, json)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(json) else { return };
    let Ok(config) = sdrt::scheduler::SchedulerConfig::from_json(text) else { return };
    for kind in sdrt::SchedulerKind::all() {
        let _ = sdrt::scheduler::create(kind, &config, usize::from(steps));
    }
});
