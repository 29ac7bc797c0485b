//! Generation parameters as AUTOMATIC1111 writes them into a PNG's `parameters` text:
//!
//! ```text
//! a cat, (blue:1.2) sky
//! Negative prompt: blur
//! Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 42, Size: 64x48, ...
//! ```
//!
//! Keys A1111 knows keep its meaning (its "Clip skip" counts from 1, its RNG sources are
//! "CPU" and "NV"); what only sdrt has ("RNG: numpy", "Prompt syntax") uses keys of its own.

use sdrt::{RngKind, SchedulerKind, SigmaSpacing};

/// A1111's sampler names for sdrt's samplers.
const SAMPLERS: &[(SchedulerKind, &str)] = &[
    (SchedulerKind::Pndm, "PLMS"),
    (SchedulerKind::Ddim, "DDIM"),
    (SchedulerKind::EulerDiscrete, "Euler"),
    (SchedulerKind::EulerAncestralDiscrete, "Euler a"),
    (SchedulerKind::DpmSolverMultistep, "DPM++ 2M"),
    (SchedulerKind::LmsDiscrete, "LMS"),
    (SchedulerKind::HeunDiscrete, "Heun"),
    (SchedulerKind::Kdpm2, "DPM2"),
    (SchedulerKind::Kdpm2Ancestral, "DPM2 a"),
    (SchedulerKind::DpmSolverMultistepSde, "DPM++ 2M SDE"),
    (SchedulerKind::DpmSolverSde, "DPM++ SDE"),
    (SchedulerKind::UniPcMultistep, "UniPC"),
    (SchedulerKind::Lcm, "LCM"),
    (SchedulerKind::Ddpm, "DDPM"),
];

/// What a generation used, enough to make the same image again with the same model.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameters {
    pub prompt: String,
    pub negative_prompt: String,
    pub steps: u32,
    pub scheduler: SchedulerKind,
    pub sigmas: Option<SigmaSpacing>,
    pub guidance_scale: f32,
    pub guidance_rescale: f32,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub rng: RngKind,
    pub clip_skip: u32,
    pub plain_prompts: bool,
    /// Image to image and inpainting only.
    pub strength: Option<f64>,
    pub model: String,
}

fn sampler_name(kind: SchedulerKind) -> &'static str {
    // DPM++ 2M Karras is DPM++ 2M with "Schedule type: Karras" (written by the caller).
    let kind = if kind == SchedulerKind::DpmSolverMultistepKarras { SchedulerKind::DpmSolverMultistep } else { kind };
    SAMPLERS.iter().find(|(k, _)| *k == kind).map_or(kind.short_name(), |(_, name)| name)
}

fn schedule_name(spacing: SigmaSpacing) -> &'static str {
    match spacing {
        SigmaSpacing::Karras => "Karras",
        SigmaSpacing::Exponential => "Exponential",
        SigmaSpacing::Schedule => "Automatic",
    }
}

/// A1111 puts values with commas, colons or quotes in double quotes.
fn quoted(value: &str) -> String {
    if value.contains([',', ':', '"']) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

impl Parameters {
    pub fn to_text(&self) -> String {
        let mut text = self.prompt.clone();
        if !self.negative_prompt.is_empty() {
            text.push_str(&format!("\nNegative prompt: {}", self.negative_prompt));
        }
        let mut fields = vec![format!("Steps: {}", self.steps), format!("Sampler: {}", sampler_name(self.scheduler))];
        let sigmas = match (self.scheduler, self.sigmas) {
            (SchedulerKind::DpmSolverMultistepKarras, _) => Some(SigmaSpacing::Karras),
            (_, sigmas) => sigmas,
        };
        if let Some(spacing) = sigmas {
            fields.push(format!("Schedule type: {}", schedule_name(spacing)));
        }
        fields.push(format!("CFG scale: {}", self.guidance_scale));
        if self.guidance_rescale != 0.0 {
            fields.push(format!("CFG rescale phi: {}", self.guidance_rescale));
        }
        fields.push(format!("Seed: {}", self.seed));
        fields.push(format!("Size: {}x{}", self.width, self.height));
        if !self.model.is_empty() {
            fields.push(format!("Model: {}", quoted(&self.model)));
        }
        if let Some(strength) = self.strength {
            fields.push(format!("Denoising strength: {strength}"));
        }
        if self.clip_skip > 0 {
            fields.push(format!("Clip skip: {}", self.clip_skip + 1));
        }
        fields.push(format!(
            "RNG: {}",
            match self.rng {
                RngKind::Torch => "CPU",
                RngKind::Philox => "NV",
                RngKind::Numpy => "numpy",
            }
        ));
        if self.plain_prompts {
            fields.push("Prompt syntax: plain".to_string());
        }
        fields.push(format!("Version: sdrt {}", env!("CARGO_PKG_VERSION")));
        text.push('\n');
        text.push_str(&fields.join(", "));
        text
    }

    /// Reads A1111's text back. Unknown keys are ignored; a missing "Steps:" line or a bad
    /// value of a known key is an error. A1111's default RNG source is the CPU (torch).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (head, settings) = text.rsplit_once('\n').ok_or("no \"Steps: ...\" line")?;
        if !settings.starts_with("Steps: ") {
            return Err(format!("the last line is not \"Steps: ...\": {settings:?}"));
        }
        let (prompt, negative_prompt) = match head.split_once("\nNegative prompt: ") {
            Some((prompt, negative)) => (prompt.to_string(), negative.to_string()),
            None => match head.strip_prefix("Negative prompt: ") {
                Some(negative) => (String::new(), negative.to_string()),
                None => (head.to_string(), String::new()),
            },
        };
        let mut parameters = Parameters {
            prompt,
            negative_prompt,
            steps: 20,
            scheduler: SchedulerKind::EulerAncestralDiscrete,
            sigmas: None,
            guidance_scale: 7.0,
            guidance_rescale: 0.0,
            seed: 0,
            width: 512,
            height: 512,
            rng: RngKind::Torch,
            clip_skip: 0,
            plain_prompts: false,
            strength: None,
            model: String::new(),
        };
        for (key, value) in fields(settings)? {
            let bad = |what: &str| format!("{key}: {value:?} is not {what}");
            match key.as_str() {
                "Steps" => parameters.steps = value.parse().map_err(|_| bad("a step count"))?,
                "Sampler" => {
                    let (kind, sigmas) = parse_sampler(&value).ok_or_else(|| bad("a known sampler"))?;
                    parameters.scheduler = kind;
                    parameters.sigmas = sigmas.or(parameters.sigmas);
                }
                "Schedule type" => {
                    parameters.sigmas = match value.to_ascii_lowercase().as_str() {
                        "karras" => Some(SigmaSpacing::Karras),
                        "exponential" => Some(SigmaSpacing::Exponential),
                        "automatic" => None,
                        _ => return Err(bad("Karras, Exponential or Automatic")),
                    }
                }
                "CFG scale" => parameters.guidance_scale = value.parse().map_err(|_| bad("a number"))?,
                "CFG rescale phi" => parameters.guidance_rescale = value.parse().map_err(|_| bad("a number"))?,
                "Seed" => parameters.seed = value.parse().map_err(|_| bad("a seed"))?,
                "Size" => {
                    let (w, h) = value.split_once('x').ok_or_else(|| bad("WxH"))?;
                    parameters.width = w.parse().map_err(|_| bad("WxH"))?;
                    parameters.height = h.parse().map_err(|_| bad("WxH"))?;
                }
                "Model" => parameters.model = value,
                "Denoising strength" => parameters.strength = Some(value.parse().map_err(|_| bad("a number"))?),
                "Clip skip" => {
                    let skip: u32 = value.parse().map_err(|_| bad("a layer count"))?;
                    parameters.clip_skip = skip.saturating_sub(1);
                }
                "RNG" => {
                    parameters.rng = match value.as_str() {
                        "CPU" => RngKind::Torch,
                        "NV" => RngKind::Philox,
                        other => RngKind::from_name(other).ok_or_else(|| bad("CPU, NV or numpy"))?,
                    }
                }
                "Prompt syntax" => parameters.plain_prompts = value == "plain",
                _ => {}
            }
        }
        // A1111's "DPM++ 2M" with Karras sigmas is sdrt's dpmpp_2m_karras in effect; keep the
        // kind and the spacing as read, which run the same sampler.
        Ok(parameters)
    }
}

fn parse_sampler(name: &str) -> Option<(SchedulerKind, Option<SigmaSpacing>)> {
    if let Some((kind, _)) = SAMPLERS.iter().find(|(_, a1111)| a1111.eq_ignore_ascii_case(name)) {
        return Some((*kind, None));
    }
    // Older A1111 versions wrote the schedule into the name: "DPM++ 2M Karras".
    for (suffix, spacing) in [(" Karras", SigmaSpacing::Karras), (" Exponential", SigmaSpacing::Exponential)] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some((kind, _)) = SAMPLERS.iter().find(|(_, a1111)| a1111.eq_ignore_ascii_case(base)) {
                return Some((*kind, Some(spacing)));
            }
        }
    }
    sdrt::SamplerName::parse(name).ok().map(|name| (name.kind, name.sigmas))
}

/// "Key: value, Key: "quoted, value", ..." as pairs.
fn fields(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(": ").ok_or_else(|| format!("no \"key: value\" at {rest:?}"))?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("unterminated quote in {key}"))?;
            (value, &quoted[end..])
        } else {
            match after.split_once(',') {
                Some((value, after)) => (value.to_string(), after),
                None => (after.to_string(), ""),
            }
        };
        out.push((key.trim().to_string(), value.trim().to_string()));
        rest = after.trim_start_matches(',').trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Parameters {
        Parameters {
            prompt: "a cat, (blue:1.2) sky\nsecond line".into(),
            negative_prompt: "blur".into(),
            steps: 3,
            scheduler: SchedulerKind::DpmSolverMultistepKarras,
            sigmas: None,
            guidance_scale: 6.5,
            guidance_rescale: 0.7,
            seed: 42,
            width: 64,
            height: 48,
            rng: RngKind::Philox,
            clip_skip: 1,
            plain_prompts: true,
            strength: Some(0.75),
            model: "my model, v2".into(),
        }
    }

    #[test]
    fn writes_what_a1111_writes() {
        let text = sample().to_text();
        assert!(text.starts_with("a cat, (blue:1.2) sky\nsecond line\nNegative prompt: blur\nSteps: 3, "), "{text}");
        assert!(text.contains("Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, "), "{text}");
        assert!(
            text.contains(
                "Seed: 42, Size: 64x48, Model: \"my model, v2\", Denoising strength: 0.75, Clip skip: 2, RNG: NV"
            ),
            "{text}"
        );
    }

    #[test]
    fn reads_back_what_it_writes() {
        let read = Parameters::parse(&sample().to_text()).unwrap();
        // Karras DPM++ 2M comes back as DPM++ 2M with Karras sigmas: the same sampler.
        let expected =
            Parameters { scheduler: SchedulerKind::DpmSolverMultistep, sigmas: Some(SigmaSpacing::Karras), ..sample() };
        assert_eq!(read, expected);
    }

    #[test]
    fn reads_a1111_text() {
        let text = "masterpiece, a castle\nNegative prompt: lowres\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: abc123, Model: v1-5, Clip skip: 2, Version: v1.6.0";
        let read = Parameters::parse(text).unwrap();
        assert_eq!((read.steps, read.seed, read.width, read.height), (30, 1234, 512, 768));
        assert_eq!((read.scheduler, read.sigmas), (SchedulerKind::DpmSolverMultistep, Some(SigmaSpacing::Karras)));
        assert_eq!((read.rng, read.clip_skip, read.guidance_scale), (RngKind::Torch, 1, 7.0));
        assert_eq!(read.negative_prompt, "lowres");
        assert!(Parameters::parse("just a prompt").is_err());
        assert!(Parameters::parse("p\nSteps: many").is_err());
    }
}
