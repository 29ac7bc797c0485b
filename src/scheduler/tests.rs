//! Unit tests: the name table, config parsing and defaults, error paths. Parity with
//! diffusers is tested in tests/scheduler_parity.rs.

use super::*;
use crate::rng::NumpyRng;

const SD15: &str = r#"{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.6.0",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null,
  "clip_sample": false,
  "some_future_key": {"nested": [1, 2, 3]}
}"#;

fn sd15() -> SchedulerConfig {
    SchedulerConfig::from_json(SD15).unwrap()
}

fn config(json: &str) -> SchedulerConfig {
    SchedulerConfig::from_json(json).unwrap()
}

fn is_invalid<T>(result: Result<T>) -> bool {
    matches!(result, Err(Error::InvalidArgument(_)))
}

/// Runs the whole loop with a dummy model; every step must succeed.
fn run(kind: SchedulerKind, config: &SchedulerConfig, steps: usize) -> Result<Vec<f32>> {
    let mut sched = create(kind, config, steps)?;
    let mut latents = vec![0.5f32, -1.0, 2.0];
    let sigma = sched.init_noise_sigma();
    latents.iter_mut().for_each(|v| *v *= sigma);
    let mut rng = NumpyRng::new(0);
    for i in 0..sched.timesteps().len() {
        let mut input = latents.clone();
        sched.scale_model_input(&mut input, i);
        let output: Vec<f32> = input.iter().map(|x| (x * 0.1).tanh()).collect();
        sched.step(&output, i, &mut latents, &mut rng)?;
    }
    Ok(latents)
}

#[test]
fn names_resolve_case_insensitively() {
    for (name, kind) in [
        ("PNDMScheduler", SchedulerKind::Pndm),
        ("pndmscheduler", SchedulerKind::Pndm),
        ("pndm", SchedulerKind::Pndm),
        ("PLMS", SchedulerKind::Pndm),
        ("DDIMScheduler", SchedulerKind::Ddim),
        (" ddim ", SchedulerKind::Ddim),
        ("EulerDiscreteScheduler", SchedulerKind::EulerDiscrete),
        ("Euler", SchedulerKind::EulerDiscrete),
        ("DPMSolverMultistepScheduler", SchedulerKind::DpmSolverMultistep),
        ("DPM++ 2M", SchedulerKind::DpmSolverMultistep),
        ("dpmpp_2m", SchedulerKind::DpmSolverMultistep),
        ("DPMPP_2M_KARRAS", SchedulerKind::DpmSolverMultistepKarras),
        ("dpm++_2m_karras", SchedulerKind::DpmSolverMultistepKarras),
        ("LMSDiscreteScheduler", SchedulerKind::LmsDiscrete),
        ("LMS", SchedulerKind::LmsDiscrete),
        ("k_lms", SchedulerKind::LmsDiscrete),
        ("HeunDiscreteScheduler", SchedulerKind::HeunDiscrete),
        ("heun", SchedulerKind::HeunDiscrete),
        ("euler_a", SchedulerKind::EulerAncestralDiscrete),
        ("Euler_Ancestral", SchedulerKind::EulerAncestralDiscrete),
        ("EulerAncestralDiscreteScheduler", SchedulerKind::EulerAncestralDiscrete),
        ("DDPMScheduler", SchedulerKind::Ddpm),
        ("ddpm", SchedulerKind::Ddpm),
        ("KDPM2DiscreteScheduler", SchedulerKind::Kdpm2),
        ("DPM2", SchedulerKind::Kdpm2),
        ("k_dpm_2", SchedulerKind::Kdpm2),
        ("dpm_2", SchedulerKind::Kdpm2),
        ("kdpm2", SchedulerKind::Kdpm2),
        ("KDPM2AncestralDiscreteScheduler", SchedulerKind::Kdpm2Ancestral),
        ("dpm2_a", SchedulerKind::Kdpm2Ancestral),
        ("k_dpm_2_a", SchedulerKind::Kdpm2Ancestral),
        ("kdpm2_a", SchedulerKind::Kdpm2Ancestral),
        ("DPM2_Ancestral", SchedulerKind::Kdpm2Ancestral),
        ("kdpm2_ancestral", SchedulerKind::Kdpm2Ancestral),
        ("DPMSolverSDEScheduler", SchedulerKind::DpmSolverSde),
        ("dpmpp_sde", SchedulerKind::DpmSolverSde),
        ("DPM++ SDE", SchedulerKind::DpmSolverSde),
        ("dpm++_sde", SchedulerKind::DpmSolverSde),
        ("k_dpmpp_sde", SchedulerKind::DpmSolverSde),
        ("dpmpp_2m_sde", SchedulerKind::DpmSolverMultistepSde),
        ("DPM++ 2M SDE", SchedulerKind::DpmSolverMultistepSde),
        ("sde-dpmsolver++", SchedulerKind::DpmSolverMultistepSde),
        ("UniPCMultistepScheduler", SchedulerKind::UniPcMultistep),
        ("UniPC", SchedulerKind::UniPcMultistep),
        ("unipc_bh2", SchedulerKind::UniPcMultistep),
        ("LCMScheduler", SchedulerKind::Lcm),
        ("lcm", SchedulerKind::Lcm),
    ] {
        assert_eq!(SchedulerKind::from_name(name), Some(kind), "{name}");
    }
    for name in ["", "ddpm_wuerstchen", "dpmpp_3m_sde", "unipc_bh1"] {
        assert_eq!(SchedulerKind::from_name(name), None, "{name}");
    }
    for kind in SchedulerKind::all() {
        // The Karras variant shares its class; the class name means "as the config says".
        let by_class = match kind {
            SchedulerKind::DpmSolverMultistepKarras | SchedulerKind::DpmSolverMultistepSde => {
                SchedulerKind::DpmSolverMultistep
            }
            kind => kind,
        };
        assert_eq!(SchedulerKind::from_name(kind.class_name()), Some(by_class));
        assert_eq!(SchedulerKind::from_name(kind.short_name()), Some(kind));
        assert_eq!(kind.to_string(), kind.class_name());
    }
    assert_eq!(SchedulerKind::all().count(), 15);
    assert_eq!(SchedulerKind::DpmSolverMultistepKarras.short_name(), "dpmpp_2m_karras");
    assert_eq!(SchedulerKind::Ddim.class_name(), "DDIMScheduler");
    assert_eq!(SchedulerKind::Pndm.short_name(), "pndm");
}

#[test]
fn config_parses_sd15_and_ignores_unknown_keys() {
    let c = sd15();
    assert_eq!(c.class_name(), Some("PNDMScheduler"));
    assert_eq!(c.num_train_timesteps, Some(1000));
    assert_eq!(c.beta_schedule.as_deref(), Some("scaled_linear"));
    assert_eq!(c.trained_betas, None);
    assert_eq!(c.steps_offset, Some(1));
    assert_eq!(c.skip_prk_steps, Some(true));
    assert_eq!(c.timestep_spacing, None);
    let empty = config("{}");
    assert_eq!(empty, SchedulerConfig::default());
    assert_eq!(empty.class_name(), None);
    assert_eq!(empty.train_timesteps().unwrap(), 1000);
    assert_eq!(empty.offset(), 0);
}

#[test]
fn bad_json_is_an_invalid_argument() {
    assert!(is_invalid(SchedulerConfig::from_json("not json")));
    assert!(is_invalid(SchedulerConfig::from_json(r#"{"num_train_timesteps": "many"}"#)));
    assert!(is_invalid(SchedulerConfig::from_json(r#"{"steps_offset": 1.5}"#)));
    assert!(is_invalid(SchedulerConfig::from_json("[]")));
}

#[test]
fn missing_keys_take_the_built_class_defaults() {
    let empty = config("{}");
    // DDIM: leading spacing, offset 0.
    let ddim = create(SchedulerKind::Ddim, &empty, 10).unwrap();
    assert_eq!(ddim.timesteps(), &[900.0, 800.0, 700.0, 600.0, 500.0, 400.0, 300.0, 200.0, 100.0, 0.0]);
    // Euler: linspace spacing.
    let euler = create(SchedulerKind::EulerDiscrete, &empty, 4).unwrap();
    assert_eq!(euler.timesteps(), &[999.0, 666.0, 333.0, 0.0]);
    // PNDM: Runge-Kutta warm-up (skip_prk_steps false): 12 PRK timesteps, then n - 3 PLMS ones.
    let pndm = create(SchedulerKind::Pndm, &empty, 10).unwrap();
    assert_eq!(pndm.timesteps().len(), 12 + 7);
    assert_eq!(&pndm.timesteps()[..4], &[900.0, 850.0, 850.0, 800.0]);
    // DDIM clips x0 and ends at alpha 1 unless the config says otherwise.
    let defaults = run(SchedulerKind::Ddim, &empty, 10).unwrap();
    let explicit = run(SchedulerKind::Ddim, &config(r#"{"clip_sample": true, "set_alpha_to_one": true}"#), 10);
    assert_eq!(defaults, explicit.unwrap());
    let neither = run(SchedulerKind::Ddim, &config(r#"{"clip_sample": false, "set_alpha_to_one": false}"#), 10);
    assert_ne!(defaults, neither.unwrap());
    assert_eq!(EULER_DEFAULTS.timestep_spacing, TimestepSpacing::Linspace);
    assert_eq!(PNDM_DEFAULTS.beta_schedule, BetaSchedule::Linear);
}

#[test]
fn sd15_timesteps() {
    let c = sd15();
    let pndm = create(SchedulerKind::Pndm, &c, 4).unwrap();
    assert_eq!(pndm.timesteps(), &[751.0, 501.0, 501.0, 251.0, 1.0]);
    assert_eq!(create(SchedulerKind::Pndm, &c, 1).unwrap().timesteps(), &[1.0]);
    let ddim = create(SchedulerKind::Ddim, &c, 4).unwrap();
    assert_eq!(ddim.timesteps(), &[751.0, 501.0, 251.0, 1.0]);
    let euler = create(SchedulerKind::EulerDiscrete, &c, 1).unwrap();
    assert_eq!(euler.timesteps(), &[0.0]);
}

#[test]
fn onnx_pipeline_overrides() {
    let mut c = config(r#"{"steps_offset": 0, "clip_sample": true}"#);
    c.apply_onnx_pipeline_overrides();
    assert_eq!((c.steps_offset, c.clip_sample), (Some(1), Some(false)));
}

#[test]
fn bad_step_counts_are_errors() {
    let c = sd15();
    for kind in SchedulerKind::all() {
        assert!(is_invalid(create(kind, &c, 0)), "{kind}: 0 steps");
        assert!(is_invalid(create(kind, &c, 1001)), "{kind}: 1001 steps");
        assert!(create(kind, &c, 1000).is_ok() || kind != SchedulerKind::EulerDiscrete);
    }
    // DDIM/PNDM at 1000 steps with offset 1 would index alphas_cumprod[1000].
    assert!(is_invalid(create(SchedulerKind::Ddim, &c, 1000)));
    assert!(is_invalid(create(SchedulerKind::Pndm, &c, 1000)));
    assert!(create(SchedulerKind::Ddim, &config(r#"{"steps_offset": 0}"#), 1000).is_ok());
    // A negative offset would index alphas_cumprod[-1] (diffusers silently wraps around).
    assert!(is_invalid(create(SchedulerKind::Ddim, &config(r#"{"steps_offset": -1}"#), 10)));
    // PRK warm-up needs 4 steps.
    let prk = config(r#"{"skip_prk_steps": false}"#);
    assert!(is_invalid(create(SchedulerKind::Pndm, &prk, 3)));
    assert!(run(SchedulerKind::Pndm, &prk, 4).is_ok());
}

#[test]
fn bad_options_are_errors() {
    let cases: &[(SchedulerKind, &str)] = &[
        (SchedulerKind::Ddim, r#"{"beta_schedule": "sigmoid"}"#),
        (SchedulerKind::Pndm, r#"{"beta_schedule": "cosine"}"#),
        (SchedulerKind::EulerDiscrete, r#"{"timestep_spacing": "uniform"}"#),
        (SchedulerKind::Ddim, r#"{"prediction_type": "flow_prediction"}"#),
        (SchedulerKind::Ddim, r#"{"prediction_type": "original_sample"}"#),
        (SchedulerKind::Pndm, r#"{"prediction_type": "sample"}"#),
        (SchedulerKind::Ddim, r#"{"num_train_timesteps": 0}"#),
        (SchedulerKind::Ddim, r#"{"trained_betas": [0.1, 0.2]}"#),
        (SchedulerKind::Ddim, r#"{"num_train_timesteps": 2, "trained_betas": [0.1, 1.5]}"#),
        (SchedulerKind::Ddim, r#"{"thresholding": true}"#),
        (SchedulerKind::Ddim, r#"{"clip_sample": true, "clip_sample_range": -1.0}"#),
        (SchedulerKind::EulerDiscrete, r#"{"use_beta_sigmas": true}"#),
        (SchedulerKind::EulerDiscrete, r#"{"use_karras_sigmas": true, "use_exponential_sigmas": true}"#),
        (SchedulerKind::EulerDiscrete, r#"{"interpolation_type": "cubic"}"#),
        (SchedulerKind::EulerDiscrete, r#"{"final_sigmas_type": "one"}"#),
        (SchedulerKind::EulerDiscrete, r#"{"timestep_type": "fractional"}"#),
        // The noise-prediction algorithms need final_sigmas_type sigma_min (diffusers raises).
        (SchedulerKind::DpmSolverMultistep, r#"{"algorithm_type": "dpmsolver"}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"algorithm_type": "sde-dpmsolver"}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"algorithm_type": "dpmsolver+++"}"#),
        (SchedulerKind::DpmSolverMultistepSde, r#"{"solver_order": 3}"#),
        (SchedulerKind::DpmSolverMultistepSde, r#"{"thresholding": true}"#),
        (SchedulerKind::UniPcMultistep, r#"{"solver_order": 3}"#),
        (SchedulerKind::UniPcMultistep, r#"{"solver_type": "bh3"}"#),
        (SchedulerKind::UniPcMultistep, r#"{"thresholding": true}"#),
        (SchedulerKind::UniPcMultistep, r#"{"use_flow_sigmas": true}"#),
        (SchedulerKind::UniPcMultistep, r#"{"use_dynamic_shifting": true}"#),
        (SchedulerKind::UniPcMultistep, r#"{"use_beta_sigmas": true}"#),
        (SchedulerKind::UniPcMultistep, r#"{"shift_terminal": 0.1}"#),
        (SchedulerKind::UniPcMultistep, r#"{"solver_p": {"_class_name": "DDIMScheduler"}}"#),
        (SchedulerKind::UniPcMultistep, r#"{"prediction_type": "flow_prediction"}"#),
        (SchedulerKind::UniPcMultistep, r#"{"use_karras_sigmas": true, "use_exponential_sigmas": true}"#),
        // diffusers' last step gives NaN / inf with a final sigma of 0 here.
        (SchedulerKind::UniPcMultistep, r#"{"solver_type": "bh1"}"#),
        (SchedulerKind::UniPcMultistep, r#"{"predict_x0": false}"#),
        (SchedulerKind::UniPcMultistep, r#"{"lower_order_final": false}"#),
        (SchedulerKind::UniPcMultistep, r#"{"final_sigmas_type": "one"}"#),
        (SchedulerKind::UniPcMultistep, r#"{"use_karras_sigmas": true, "beta_schedule": "squaredcos_cap_v2"}"#),
        (SchedulerKind::Lcm, r#"{"thresholding": true}"#),
        (SchedulerKind::Lcm, r#"{"original_inference_steps": 5}"#),
        (SchedulerKind::Lcm, r#"{"original_inference_steps": 0}"#),
        (SchedulerKind::Lcm, r#"{"original_inference_steps": 2000}"#),
        (SchedulerKind::Lcm, r#"{"clip_sample": true, "clip_sample_range": -1.0}"#),
        (SchedulerKind::Lcm, r#"{"prediction_type": "flow_prediction"}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"solver_order": 3}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"solver_order": 0}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"solver_type": "rk4"}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"thresholding": true}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"variance_type": "learned_range"}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"use_lu_lambdas": true}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"use_flow_sigmas": true}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"use_beta_sigmas": true}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"lambda_min_clipped": -5.1}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"prediction_type": "flow_prediction"}"#),
        (SchedulerKind::DpmSolverMultistep, r#"{"final_sigmas_type": "one"}"#),
        (SchedulerKind::DpmSolverMultistepKarras, r#"{"use_exponential_sigmas": true}"#),
        (SchedulerKind::EulerAncestralDiscrete, r#"{"prediction_type": "sample"}"#),
        (SchedulerKind::Ddpm, r#"{"variance_type": "learned_range"}"#),
        (SchedulerKind::Ddpm, r#"{"variance_type": "fixed_large_log"}"#),
        (SchedulerKind::Ddpm, r#"{"thresholding": true}"#),
        (SchedulerKind::Ddpm, r#"{"beta_schedule": "sigmoid"}"#),
        // Karras sigmas on the cosine schedule repeat the first timestep (diffusers then
        // runs off the end of its sigmas).
        (SchedulerKind::DpmSolverMultistepKarras, r#"{"beta_schedule": "squaredcos_cap_v2"}"#),
        // diffusers raises NotImplementedError for "sample" in these classes' step.
        (SchedulerKind::Kdpm2, r#"{"prediction_type": "sample"}"#),
        (SchedulerKind::Kdpm2Ancestral, r#"{"prediction_type": "sample"}"#),
        (SchedulerKind::DpmSolverSde, r#"{"prediction_type": "sample"}"#),
        (SchedulerKind::Kdpm2, r#"{"use_beta_sigmas": true}"#),
        (SchedulerKind::Kdpm2Ancestral, r#"{"use_karras_sigmas": true, "use_exponential_sigmas": true}"#),
        (SchedulerKind::DpmSolverSde, r#"{"use_beta_sigmas": true}"#),
        (SchedulerKind::Kdpm2, r#"{"timestep_spacing": "uniform"}"#),
        // The Brownian tree's seed: sdrt's DPM++ SDE has no tree.
        (SchedulerKind::DpmSolverSde, r#"{"noise_sampler_seed": 42}"#),
        // A zero training sigma (beta 0) inside the schedule would divide by zero.
        (SchedulerKind::Kdpm2, r#"{"num_train_timesteps": 2, "trained_betas": [0.0, 0.0]}"#),
    ];
    for (kind, json) in cases {
        assert!(is_invalid(create(*kind, &config(json), 10)), "{kind} {json}");
    }
    // Options a sampler does not have are ignored, as diffusers' from_config does.
    assert!(create(SchedulerKind::Pndm, &config(r#"{"use_beta_sigmas": true, "thresholding": true}"#), 10).is_ok());
    assert!(create(SchedulerKind::EulerDiscrete, &config(r#"{"prediction_type": "original_sample"}"#), 10).is_ok());
    // diffusers turns these into dpmsolver++ / midpoint.
    let deis = config(r#"{"algorithm_type": "deis", "solver_type": "bh2"}"#);
    assert!(create(SchedulerKind::DpmSolverMultistep, &deis, 10).is_ok());
    let sde = config(r#"{"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min"}"#);
    assert!(create(SchedulerKind::DpmSolverMultistep, &sde, 10).is_ok());
    // UniPC takes DPM-Solver's solver_type names as bh2, and ignores keys it does not have.
    let unipc = config(r#"{"solver_type": "midpoint", "algorithm_type": "sde-dpmsolver++", "solver_p": null}"#);
    assert!(create(SchedulerKind::UniPcMultistep, &unipc, 10).is_ok());
    let bh1 = config(r#"{"solver_type": "bh1", "final_sigmas_type": "sigma_min", "disable_corrector": [0]}"#);
    assert!(create(SchedulerKind::UniPcMultistep, &bh1, 10).is_ok());
    // LCM has timestep_spacing and steps_offset keys but never reads them.
    let lcm = config(r#"{"timestep_spacing": "trailing", "steps_offset": 7, "original_inference_steps": 4}"#);
    assert_eq!(create(SchedulerKind::Lcm, &lcm, 4).unwrap().timesteps(), &[999.0, 749.0, 499.0, 249.0]);
    assert!(is_invalid(create(SchedulerKind::Lcm, &lcm, 5)));
    // numpy's arange makes 62 "trailing" timesteps for 61 steps; diffusers would run 62.
    let trailing = config(r#"{"timestep_spacing": "trailing"}"#);
    assert!(is_invalid(create(SchedulerKind::DpmSolverMultistep, &trailing, 61)));
    assert!(create(SchedulerKind::DpmSolverMultistep, &trailing, 60).is_ok());
    assert!(is_invalid(create(SchedulerKind::Ddpm, &trailing, 61)));
    assert!(create(SchedulerKind::Ddpm, &trailing, 60).is_ok());
    for kind in [SchedulerKind::Kdpm2, SchedulerKind::Kdpm2Ancestral, SchedulerKind::DpmSolverSde] {
        assert!(is_invalid(create(kind, &trailing, 61)), "{kind}");
        assert!(create(kind, &trailing, 60).is_ok(), "{kind}");
    }
    // Keys these classes do not have are ignored, as diffusers ignores them.
    let foreign = config(
        r#"{"rescale_betas_zero_snr": true, "thresholding": true, "final_sigmas_type": "one",
            "interpolation_type": "cubic", "solver_order": 7, "clip_sample": true}"#,
    );
    for kind in [SchedulerKind::Kdpm2, SchedulerKind::Kdpm2Ancestral, SchedulerKind::DpmSolverSde] {
        assert!(run(kind, &foreign, 10).is_ok(), "{kind}");
    }
    assert!(create(SchedulerKind::DpmSolverSde, &config(r#"{"noise_sampler_seed": null}"#), 10).is_ok());
}

#[test]
fn two_evaluation_samplers_interleave_their_timesteps() {
    let c = sd15();
    for kind in [SchedulerKind::Kdpm2, SchedulerKind::Kdpm2Ancestral, SchedulerKind::DpmSolverSde] {
        for steps in [1, 2, 5] {
            let sched = create(kind, &c, steps).unwrap();
            let t = sched.timesteps();
            assert_eq!(t.len(), 2 * steps - 1, "{kind} {steps}");
            // Even indices are the spaced timesteps, odd ones lie between their neighbours.
            for i in (1..t.len()).step_by(2) {
                assert!(t[i - 1] >= t[i] && t[i] >= t[i + 1], "{kind} {steps}: {t:?}");
            }
        }
    }
    // DPM2 steps must come in order.
    let mut rng = NumpyRng::new(0);
    let mut dpm2 = create(SchedulerKind::Kdpm2, &c, 3).unwrap();
    let mut sample = vec![0.1f32; 8];
    assert!(is_invalid(dpm2.step(&[0.0; 8], 1, &mut sample, &mut rng)));
    assert!(dpm2.step(&[0.0; 8], 0, &mut sample, &mut rng).is_ok());
    assert!(is_invalid(dpm2.step(&[0.0; 4], 1, &mut [0.0; 4], &mut rng)));
}

/// The ancestral and SDE samplers draw one sample-sized block of noise where diffusers does:
/// DPM2 ancestral on each second-order index (n - 1 draws), DPM++ SDE on every index but the
/// last (2n - 2 draws).
#[test]
fn noise_draw_counts() {
    struct Counting(usize);
    impl crate::rng::NormalRng for Counting {
        fn fill_standard_normal(&mut self, out: &mut [f32]) {
            self.0 += 1;
            out.iter_mut().for_each(|v| *v = 0.0);
        }
    }
    for (kind, draws) in
        [(SchedulerKind::Kdpm2, 0), (SchedulerKind::Kdpm2Ancestral, 4), (SchedulerKind::DpmSolverSde, 8)]
    {
        let mut sched = create(kind, &sd15(), 5).unwrap();
        let mut rng = Counting(0);
        let mut latents = vec![0.5f32; 4];
        for i in 0..sched.timesteps().len() {
            sched.step(&[0.1; 4], i, &mut latents, &mut rng).unwrap();
        }
        assert_eq!(rng.0, draws, "{kind}");
    }
}

#[test]
fn dpm_karras_kind_forces_karras_sigmas() {
    let mut karras = sd15();
    karras.use_karras_sigmas = Some(true);
    let forced = create(SchedulerKind::DpmSolverMultistepKarras, &sd15(), 20).unwrap();
    let by_config = create(SchedulerKind::DpmSolverMultistep, &karras, 20).unwrap();
    let plain = create(SchedulerKind::DpmSolverMultistep, &sd15(), 20).unwrap();
    assert_eq!(forced.timesteps(), by_config.timesteps());
    assert_ne!(forced.timesteps(), plain.timesteps());
    assert_eq!(
        run(SchedulerKind::DpmSolverMultistepKarras, &sd15(), 20).unwrap(),
        run(SchedulerKind::DpmSolverMultistep, &karras, 20).unwrap()
    );
}

#[test]
fn dpm_sde_kind_forces_the_sde_algorithm() {
    let mut sde = sd15();
    sde.algorithm_type = Some("sde-dpmsolver++".into());
    let forced = run(SchedulerKind::DpmSolverMultistepSde, &sd15(), 12).unwrap();
    // The plain kind runs the SDE when the config says so, as diffusers does.
    assert_eq!(forced, run(SchedulerKind::DpmSolverMultistep, &sde, 12).unwrap());
    assert_ne!(forced, run(SchedulerKind::DpmSolverMultistep, &sd15(), 12).unwrap());
    // Whatever the config's algorithm_type.
    let mut other = sd15();
    other.algorithm_type = Some("dpmsolver++".into());
    assert_eq!(forced, run(SchedulerKind::DpmSolverMultistepSde, &other, 12).unwrap());
    // The noise comes from the rng: another seed, another result.
    let mut a = create(SchedulerKind::DpmSolverMultistepSde, &sd15(), 3).unwrap();
    let mut b = create(SchedulerKind::DpmSolverMultistepSde, &sd15(), 3).unwrap();
    let (mut xa, mut xb) = (vec![0.5f32; 4], vec![0.5f32; 4]);
    a.step(&[0.1; 4], 0, &mut xa, &mut NumpyRng::new(0)).unwrap();
    b.step(&[0.1; 4], 0, &mut xb, &mut NumpyRng::new(1)).unwrap();
    assert_ne!(xa, xb);
}

#[test]
fn lms_coefficients_integrate_the_lagrange_basis() {
    // The basis polynomials sum to 1, so the coefficients sum to sigma[t + 1] - sigma[t];
    // order 1 is Euler's step.
    let sigmas = [14.6f32, 7.0, 3.1, 1.2, 0.5, 0.0];
    assert_eq!(lms_coefficient(&sigmas, 1, 0, 0), (sigmas[1] - sigmas[0]) as f64);
    for t in 0..5 {
        let order = (t + 1).min(4);
        let sum: f64 = (0..order).map(|k| lms_coefficient(&sigmas, order, t, k)).sum();
        let want = (sigmas[t + 1] - sigmas[t]) as f64;
        assert!((sum - want).abs() < 1e-5 * want.abs().max(1.0), "t = {t}: {sum} != {want}");
    }
    // LMS steps, like PNDM's, must come in order.
    let mut lms = create(SchedulerKind::LmsDiscrete, &sd15(), 3).unwrap();
    let mut rng = NumpyRng::new(0);
    let mut sample = vec![0.1f32; 8];
    assert!(is_invalid(lms.step(&[0.0; 8], 1, &mut sample, &mut rng)));
    assert!(lms.step(&[0.0; 8], 0, &mut sample, &mut rng).is_ok());
    assert!(is_invalid(lms.step(&[0.0; 4], 1, &mut [0.0; 4], &mut rng)));
}

#[test]
fn python_negative_infinity_loads_as_unset() {
    let c =
        config(r#"{"lambda_min_clipped": -Infinity, "_class_name": "DPMSolverMultistepScheduler", "x": "-Infinity"}"#);
    assert_eq!(c.lambda_min_clipped, None);
    assert!(create(SchedulerKind::DpmSolverMultistep, &c, 10).is_ok());
    assert!(is_invalid(SchedulerConfig::from_json(r#"{"beta_end": Infinity}"#)));
}

#[test]
fn bad_step_calls_are_errors_not_panics() {
    let c = sd15();
    let mut rng = NumpyRng::new(0);
    for kind in SchedulerKind::all() {
        let mut sched = create(kind, &c, 3).unwrap();
        let n = sched.timesteps().len();
        let mut sample = vec![0.1f32; 8];
        // Mismatched lengths.
        assert!(is_invalid(sched.step(&[0.0; 7], 0, &mut sample, &mut rng)), "{kind}");
        // Past the end.
        assert!(is_invalid(sched.step(&[0.0; 8], n, &mut sample, &mut rng)), "{kind}");
        assert!(is_invalid(sched.step(&[0.0; 8], usize::MAX, &mut sample, &mut rng)), "{kind}");
        // scale_model_input past the end leaves the input alone.
        let mut input = vec![1.0f32; 4];
        sched.scale_model_input(&mut input, usize::MAX);
        assert_eq!(input, vec![1.0; 4]);
    }
    // PNDM keeps a history, so its steps must come in order.
    let mut pndm = create(SchedulerKind::Pndm, &c, 3).unwrap();
    let mut sample = vec![0.1f32; 8];
    assert!(is_invalid(pndm.step(&[0.0; 8], 1, &mut sample, &mut rng)));
    assert!(pndm.step(&[0.0; 8], 0, &mut sample, &mut rng).is_ok());
    assert!(is_invalid(pndm.step(&[0.0; 8], 0, &mut sample, &mut rng)));
}

/// Small and odd schedules (1-3 training steps, every spacing, odd offsets) either build and
/// run to the end, or are refused; none may panic.
#[test]
fn odd_schedules_never_panic() {
    let spacings = ["leading", "trailing", "linspace"];
    let mut ran = 0;
    for kind in SchedulerKind::all() {
        for train in [1usize, 2, 3, 7, 1000] {
            for spacing in spacings {
                for offset in [-2i64, 0, 1, 5, i64::MAX] {
                    for extra in [
                        "",
                        r#", "skip_prk_steps": true"#,
                        r#", "use_karras_sigmas": true"#,
                        r#", "rescale_betas_zero_snr": true, "prediction_type": "v_prediction""#,
                        r#", "interpolation_type": "log_linear", "use_exponential_sigmas": true"#,
                    ] {
                        let json = format!(
                            r#"{{"num_train_timesteps": {train}, "timestep_spacing": "{spacing}", "steps_offset": {offset}{extra}}}"#
                        );
                        let c = config(&json);
                        for steps in [1, 2, 4, train] {
                            if let Ok(out) = run(kind, &c, steps) {
                                ran += 1;
                                assert_eq!(out.len(), 3, "{kind} {json} {steps}");
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(ran > 100, "only {ran} schedules ran");
}

#[test]
fn sd15_loops_stay_finite() {
    for kind in SchedulerKind::all() {
        let out = run(kind, &sd15(), 50).unwrap();
        assert!(out.iter().all(|v| v.is_finite()), "{kind}: {out:?}");
    }
}

#[test]
fn sampler_names_carry_the_sigma_spacing() {
    let parse = |name: &str| SamplerName::parse(name).unwrap();
    let named = |kind, sigmas| SamplerName { kind, sigmas };
    use SchedulerKind::*;
    use SigmaSpacing::*;
    assert_eq!(parse("euler"), named(EulerDiscrete, None));
    assert_eq!(parse("dpmpp_2m_karras"), named(DpmSolverMultistepKarras, None));
    assert_eq!(parse("euler_karras"), named(EulerDiscrete, Some(Karras)));
    assert_eq!(parse("  LMS Karras "), named(LmsDiscrete, Some(Karras)));
    assert_eq!(parse("heun-exponential"), named(HeunDiscrete, Some(Exponential)));
    assert_eq!(parse("DPM++ 2M exponential"), named(DpmSolverMultistep, Some(Exponential)));
    assert_eq!(parse("DPMSolverMultistepScheduler(use_karras_sigmas=True)"), named(DpmSolverMultistep, Some(Karras)));
    assert_eq!(
        parse("EulerDiscreteScheduler( use_karras_sigmas = false, use_exponential_sigmas=TRUE )"),
        named(EulerDiscrete, Some(Exponential))
    );
    assert_eq!(parse("EulerDiscreteScheduler(use_karras_sigmas=false)"), named(EulerDiscrete, Some(Schedule)));
    assert_eq!(parse("EulerDiscreteScheduler()"), named(EulerDiscrete, None));
    for bad in [
        "euler_a_karras",                        // no such option in diffusers
        "ddim karras",                           // same
        "PNDMScheduler(use_karras_sigmas=True)", // same
        "dpmpp_2m_karras_exponential",           // contradicts its name
        "EulerDiscreteScheduler(use_karras_sigmas=True, use_exponential_sigmas=True)", // both
        "EulerDiscreteScheduler(timestep_spacing=trailing)", // not a per-call option
        "EulerDiscreteScheduler(use_karras_sigmas=maybe)",
        "euler__karras",
        "karras",
        "nonsense_karras",
        "euler(use_karras_sigmas=True",
    ] {
        assert!(is_invalid(SamplerName::parse(bad)), "{bad:?} should be refused");
    }
}

#[test]
fn per_call_sigma_spacing_replaces_the_config() {
    let karras_config = config(
        r#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
        "use_karras_sigmas": true}"#,
    );
    let plain = create(SchedulerKind::EulerDiscrete, &sd15(), 10).unwrap().timesteps().to_vec();
    let karras = create(SchedulerKind::EulerDiscrete, &karras_config, 10).unwrap().timesteps().to_vec();
    assert_ne!(plain, karras);
    let forced = |config: &SchedulerConfig, spacing| {
        create_with_sigmas(SchedulerKind::EulerDiscrete, config, 10, spacing).unwrap().timesteps().to_vec()
    };
    assert_eq!(forced(&sd15(), Some(SigmaSpacing::Karras)), karras);
    assert_eq!(forced(&karras_config, Some(SigmaSpacing::Schedule)), plain);
    assert_eq!(forced(&karras_config, None), karras);
    assert_ne!(forced(&sd15(), Some(SigmaSpacing::Exponential)), plain);
    // A sampler without the option: Karras is refused, the training schedule is what it does anyway.
    assert!(is_invalid(create_with_sigmas(SchedulerKind::Ddim, &sd15(), 10, Some(SigmaSpacing::Karras))));
    assert!(create_with_sigmas(SchedulerKind::Ddim, &sd15(), 10, Some(SigmaSpacing::Schedule)).is_ok());
}
