//! diffusers' `scheduler_config.json`, and the typed options read from it.
//!
//! Every key is optional: a key that is missing takes the default of the scheduler class that
//! is being built (as `SomeScheduler.from_config(config)` does in diffusers), not of the class
//! named by `_class_name`. Those per-class defaults live in [`ClassDefaults`], one constant in
//! each scheduler's file. Unknown keys are ignored; string options are checked when a
//! scheduler is built, so a config naming an option one sampler does not support still loads.

use crate::error::{Error, Result};

/// The contents of diffusers' `scheduler_config.json` (keys as diffusers spells them).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// `_class_name`: the scheduler class the model was saved with (its default sampler).
    #[serde(rename = "_class_name")]
    pub class: Option<String>,
    /// Length of the training noise schedule (default 1000).
    pub num_train_timesteps: Option<usize>,
    /// First beta of the `linear` / `scaled_linear` schedule (default: the class's).
    pub beta_start: Option<f64>,
    /// Last beta of the `linear` / `scaled_linear` schedule (default: the class's).
    pub beta_end: Option<f64>,
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: Option<String>,
    /// Explicit betas; replace `beta_start`/`beta_end`/`beta_schedule` when present.
    pub trained_betas: Option<Vec<f64>>,
    /// Added to the inference timesteps of `leading` spacing (default 0; SD configs say 1).
    pub steps_offset: Option<i64>,
    /// DDIM, PNDM, LCM: the alpha_cumprod past the last step is 1 instead of
    /// `alphas_cumprod[0]`.
    pub set_alpha_to_one: Option<bool>,
    /// PNDM: plain PLMS, without the Runge-Kutta warm-up steps (default false).
    pub skip_prk_steps: Option<bool>,
    /// `leading`, `trailing` or `linspace`.
    pub timestep_spacing: Option<String>,
    /// `epsilon`, `v_prediction` or `sample`.
    pub prediction_type: Option<String>,
    /// DDIM, DDPM, Heun, LCM: clamp the predicted x0 to `[-clip_sample_range, clip_sample_range]`
    /// (default: the class's).
    pub clip_sample: Option<bool>,
    /// The bound `clip_sample` clamps to (default 1).
    pub clip_sample_range: Option<f64>,
    /// Dynamic thresholding (not supported: setting it true is an error).
    pub thresholding: Option<bool>,
    /// Rescale the betas to zero terminal SNR (default false).
    pub rescale_betas_zero_snr: Option<bool>,
    /// Euler-family: `linear` or `log_linear`.
    pub interpolation_type: Option<String>,
    /// Karras et al.'s sigma spacing (see [`SigmaSpacing::Karras`]).
    pub use_karras_sigmas: Option<bool>,
    /// Sigmas evenly spaced in log sigma (see [`SigmaSpacing::Exponential`]).
    pub use_exponential_sigmas: Option<bool>,
    /// Beta-distributed sigmas (not supported: setting it true is an error).
    pub use_beta_sigmas: Option<bool>,
    /// Smallest sigma of the Karras / exponential spacing (default: the training schedule's).
    pub sigma_min: Option<f64>,
    /// Largest sigma of the Karras / exponential spacing (default: the training schedule's).
    pub sigma_max: Option<f64>,
    /// Euler-family: `discrete` or `continuous`.
    pub timestep_type: Option<String>,
    /// `zero` or `sigma_min`.
    pub final_sigmas_type: Option<String>,
    /// DPM-Solver: 1, 2 (default) or 3.
    pub solver_order: Option<usize>,
    /// DPM-Solver: `dpmsolver++` (default), `dpmsolver`, `sde-dpmsolver++`, `sde-dpmsolver`.
    pub algorithm_type: Option<String>,
    /// DPM-Solver: `midpoint` (default) or `heun`.
    pub solver_type: Option<String>,
    /// DPM-Solver: lower the order of the last steps of short runs (default true).
    pub lower_order_final: Option<bool>,
    /// DPM-Solver: make the last step first order (default false).
    pub euler_at_final: Option<bool>,
    /// DPM-Solver: lambdas spaced as in Lu et al. (not supported: setting it true is an error).
    pub use_lu_lambdas: Option<bool>,
    /// Flow-matching sigmas (not supported: setting it true is an error).
    pub use_flow_sigmas: Option<bool>,
    /// Resolution-dependent timestep shifting (not supported: setting it true is an error).
    pub use_dynamic_shifting: Option<bool>,
    /// DPM-Solver: `learned` / `learned_range` model outputs (not supported).
    pub variance_type: Option<String>,
    /// DPM-Solver: only the default (-inf, which JSON cannot spell, so absent) is supported.
    pub lambda_min_clipped: Option<f64>,
    /// DPM-Solver SDE: the Brownian tree's seed (not supported: sdrt's DPM++ SDE has no tree).
    pub noise_sampler_seed: Option<i64>,
    /// UniPC: predict x0 (true, the default) or the noise.
    pub predict_x0: Option<bool>,
    /// UniPC: step indices whose corrector is skipped (default none).
    pub disable_corrector: Option<Vec<i64>>,
    /// UniPC: an external predictor scheduler (only the default, none, is supported).
    pub solver_p: Option<serde_json::Value>,
    /// UniPC: flow-matching terminal shift (not supported).
    pub shift_terminal: Option<f64>,
    /// LCM: the distillation schedule's step count (default 50).
    pub original_inference_steps: Option<usize>,
    /// LCM: the timestep factor in the boundary-condition scalings (default 10).
    pub timestep_scaling: Option<f64>,
}

/// How the inference sigmas are spaced between sigma_max and sigma_min.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigmaSpacing {
    /// Interpolated from the training schedule at the chosen timesteps.
    Schedule,
    /// `use_karras_sigmas`: Karras et al.'s rho = 7 spacing.
    Karras,
    /// `use_exponential_sigmas`: evenly spaced in log sigma.
    Exponential,
}

impl SchedulerConfig {
    /// `use_karras_sigmas` / `use_exponential_sigmas` (at most one may be set);
    /// `force_karras` turns Karras on whatever the config says.
    pub fn sigma_spacing(&self, force_karras: bool) -> Result<SigmaSpacing> {
        let karras = force_karras || self.use_karras_sigmas.unwrap_or(false);
        match (karras, self.use_exponential_sigmas.unwrap_or(false)) {
            (true, true) => Err(invalid("only one of use_karras_sigmas and use_exponential_sigmas can be set")),
            (true, false) => Ok(SigmaSpacing::Karras),
            (false, true) => Ok(SigmaSpacing::Exponential),
            (false, false) => Ok(SigmaSpacing::Schedule),
        }
    }

    /// `final_sigmas_type`: true for "zero" (the default), false for "sigma_min".
    pub fn final_sigma_is_zero(&self) -> Result<bool> {
        match self.final_sigmas_type.as_deref().unwrap_or("zero") {
            "zero" => Ok(true),
            "sigma_min" => Ok(false),
            other => Err(invalid(format!("unsupported final_sigmas_type {other:?}"))),
        }
    }

    /// Parses `scheduler_config.json`. Unknown keys are ignored; `null` means "not set".
    pub fn from_json(text: &str) -> Result<Self> {
        let error = |e: serde_json::Error| invalid(format!("scheduler config: {e}"));
        let text = negative_infinity_to_null(text);
        let value: serde_json::Value = serde_json::from_str(&text).map_err(error)?;
        if !value.is_object() {
            return Err(invalid("scheduler config: expected a JSON object"));
        }
        serde_json::from_value(value).map_err(error)
    }

    /// `_class_name`, e.g. `PNDMScheduler`.
    pub fn class_name(&self) -> Option<&str> {
        self.class.as_deref()
    }

    /// Applies what `OnnxStableDiffusionPipeline.__init__` does to every scheduler it is given:
    /// `steps_offset` becomes 1 and `clip_sample` becomes false (with a deprecation warning
    /// there). Call this to reproduce that pipeline's images from configs that say otherwise.
    pub fn apply_onnx_pipeline_overrides(&mut self) {
        self.steps_offset = Some(1);
        self.clip_sample = Some(false);
    }

    /// `num_train_timesteps` (default 1000), at least 1.
    pub fn train_timesteps(&self) -> Result<usize> {
        match self.num_train_timesteps.unwrap_or(1000) {
            0 => Err(invalid("num_train_timesteps must be at least 1")),
            n if n > 1_000_000 => Err(invalid(format!("num_train_timesteps {n} is too large"))),
            n => Ok(n),
        }
    }

    /// `steps_offset` (default 0).
    pub fn offset(&self) -> i64 {
        self.steps_offset.unwrap_or(0)
    }

    /// `timestep_spacing`, or the class default.
    pub fn spacing(&self, defaults: &ClassDefaults) -> Result<TimestepSpacing> {
        self.timestep_spacing.as_deref().map_or(Ok(defaults.timestep_spacing), TimestepSpacing::parse)
    }

    /// `prediction_type`, or the class default.
    pub fn prediction(&self, defaults: &ClassDefaults) -> Result<PredictionType> {
        self.prediction_type.as_deref().map_or(Ok(defaults.prediction_type), PredictionType::parse)
    }

    /// `beta_schedule`, or the class default.
    pub fn schedule(&self, defaults: &ClassDefaults) -> Result<BetaSchedule> {
        self.beta_schedule.as_deref().map_or(Ok(defaults.beta_schedule), BetaSchedule::parse)
    }

    /// `set_alpha_to_one`, or the class default.
    pub fn alpha_to_one(&self, defaults: &ClassDefaults) -> bool {
        self.set_alpha_to_one.unwrap_or(defaults.set_alpha_to_one)
    }

    /// `rescale_betas_zero_snr` (default false).
    pub fn zero_snr(&self) -> bool {
        self.rescale_betas_zero_snr.unwrap_or(false)
    }
}

/// diffusers' `__init__` defaults for the keys whose default differs between scheduler classes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassDefaults {
    /// Default `beta_start`.
    pub beta_start: f64,
    /// Default `beta_end`.
    pub beta_end: f64,
    /// Default `beta_schedule`.
    pub beta_schedule: BetaSchedule,
    /// Default `timestep_spacing`.
    pub timestep_spacing: TimestepSpacing,
    /// Default `prediction_type`.
    pub prediction_type: PredictionType,
    /// Default `set_alpha_to_one`.
    pub set_alpha_to_one: bool,
    /// Default `clip_sample`.
    pub clip_sample: bool,
}

/// The defaults most diffusers schedulers share; each sampler overrides what differs.
pub const COMMON_DEFAULTS: ClassDefaults = ClassDefaults {
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: BetaSchedule::Linear,
    timestep_spacing: TimestepSpacing::Linspace,
    prediction_type: PredictionType::Epsilon,
    set_alpha_to_one: false,
    clip_sample: false,
};

/// How betas are laid out over the training timesteps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BetaSchedule {
    /// `linear`: evenly spaced from `beta_start` to `beta_end`.
    Linear,
    /// `scaled_linear`: evenly spaced in sqrt(beta), then squared (Stable Diffusion's).
    ScaledLinear,
    /// Glide's cosine schedule (`betas_for_alpha_bar`, cosine, max beta 0.999).
    SquaredCosCapV2,
}

impl BetaSchedule {
    /// Parses the config spelling (`linear`, `scaled_linear`, `squaredcos_cap_v2`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "linear" => Ok(Self::Linear),
            "scaled_linear" => Ok(Self::ScaledLinear),
            "squaredcos_cap_v2" => Ok(Self::SquaredCosCapV2),
            _ => Err(invalid(format!("unsupported beta_schedule {name:?}"))),
        }
    }
}

/// How inference timesteps are picked from the training range (Table 2 of
/// "Common Diffusion Noise Schedules and Sample Steps are Flawed").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// `leading`: multiples of an integer stride (about `train / steps`) from 0, plus
    /// `steps_offset`.
    Leading,
    /// `trailing`: counted down from the last training timestep in strides of `train / steps`.
    Trailing,
    /// `linspace`: evenly spaced from 0 to the last training timestep, both included.
    Linspace,
}

impl TimestepSpacing {
    /// Parses the config spelling (`leading`, `trailing`, `linspace`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "leading" => Ok(Self::Leading),
            "trailing" => Ok(Self::Trailing),
            "linspace" => Ok(Self::Linspace),
            _ => Err(invalid(format!("unsupported timestep_spacing {name:?}"))),
        }
    }
}

/// What the UNet predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictionType {
    /// The added noise.
    Epsilon,
    /// The velocity `sqrt(alpha_bar) * noise - sqrt(1 - alpha_bar) * x0` (SD 2.x 768).
    VPrediction,
    /// The clean sample x0 (`sample`; Euler also takes the old name `original_sample`).
    Sample,
}

impl PredictionType {
    /// Parses the config spelling (`epsilon`, `v_prediction`, `sample`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "epsilon" => Ok(Self::Epsilon),
            "v_prediction" => Ok(Self::VPrediction),
            "sample" => Ok(Self::Sample),
            _ => Err(invalid(format!("unsupported prediction_type {name:?}"))),
        }
    }
}

/// Python's `json` writes `float("-inf")` (DPM-Solver's default `lambda_min_clipped`) as the
/// non-JSON token `-Infinity`; it becomes `null` ("not set", i.e. the default) so such configs
/// load. String contents are left alone.
fn negative_infinity_to_null(text: &str) -> std::borrow::Cow<'_, str> {
    const TOKEN: &str = "-Infinity";
    if !text.contains(TOKEN) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_string && rest.starts_with(TOKEN) {
            out.push_str("null");
            rest = &rest[TOKEN.len()..];
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}
