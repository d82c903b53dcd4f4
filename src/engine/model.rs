//! The experiment as plain data: its definition, the arms traffic is allocated to, and the
//! validation that turns a request into a definition. No I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

use super::text;

pub const MIN_VARIANTS: usize = 2;
pub const MAX_VARIANTS: usize = 20;
pub const MAX_ELEMENTS: usize = 8;
pub const MAX_COMBINATIONS: usize = 256;
pub const MAX_NAME: usize = 200;
const MAX_TEXT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpType {
    AbTest,
    MultiElement,
    /// Email or push: variants are subject lines and bodies, sent in waves.
    Campaign,
}

/// How a campaign reaches its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Push,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    Adaptive,
    Fixed,
    /// Top-two Thompson sampling (`allocator::top_two_weights`): finds the best arm with
    /// fewer visitors than `Adaptive`, at some cost in conversions meanwhile. Last, so the
    /// stored variant indices of the others stay.
    FastLearning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Running,
    Paused,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "draft" => Status::Draft,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "completed" => Status::Completed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Start,
    Pause,
    Resume,
    Complete,
}

impl Transition {
    /// The status a transition leads to, or None when it is not allowed from `from`.
    pub fn apply(self, from: Status) -> Option<Status> {
        use Status::*;
        match (self, from) {
            (Transition::Start, Draft) => Some(Running),
            (Transition::Pause, Running) => Some(Paused),
            (Transition::Resume, Paused) => Some(Running),
            (Transition::Complete, Running | Paused) => Some(Completed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Complete => "complete",
        }
    }
}

/// The keys of a variant's content, in the order they apply (and the editor shows them): the
/// fields of `Content`, which `http::meta` checks against this list.
pub const CONTENT_KEYS: &[&str] =
    &["text", "html", "attributes", "style", "add_class", "remove_class", "hide", "redirect"];

/// What tracker.js does to an element; the small, documented set of operations that the
/// dashboard and the visual editor also speak.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_class: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_class: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Goal {
    /// On a page, a click on `selector`; in a campaign (no selector), a click on a link.
    Click {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        selector: String,
    },
    Pageview {
        url: String,
    },
    Custom {
        name: String,
    },
    /// A campaign message opened (its open pixel loaded).
    Open,
}

impl Goal {
    /// The name a conversion request uses for this goal (`goal` in /tracker/convert).
    pub fn key(&self) -> &str {
        match self {
            Goal::Click { .. } => "click",
            Goal::Pageview { .. } => "pageview",
            Goal::Custom { name } => name,
            Goal::Open => "open",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub id: Uuid,
    pub name: String,
    pub content: Content,
    pub is_control: bool,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Element {
    pub id: Uuid,
    pub name: String,
    pub selector: Option<String>,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: Uuid,
    pub owner: Uuid,
    pub seed: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub exp_type: ExpType,
    /// Campaigns only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub allocation: Allocation,
    pub status: Status,
    pub traffic_allocation: f64,
    pub target_url: Option<String>,
    pub goal: Option<Goal>,
    pub elements: Vec<Element>,
    /// Adaptive allocation's minimum share per arm.
    pub floor: f64,
    /// Equal weights until every arm has this many visitors.
    pub burn_in: u64,
    pub winner_variant_id: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub archived_at: Option<i64>,
}

/// One arm: a variant of an A/B test, or a combination (one variant per element).
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub index: usize,
    pub id: String,
    pub name: String,
    /// Index of the chosen variant in each element.
    pub variant_indices: Vec<usize>,
    pub is_control: bool,
}

impl Experiment {
    pub fn arm_count(&self) -> usize {
        self.elements.iter().map(|e| e.variants.len()).product::<usize>().max(1)
    }

    /// Variant index per element for arm `arm`: mixed radix, first element most significant,
    /// so arms enumerate combinations in reading order.
    pub fn arm_variants(&self, arm: usize) -> Vec<usize> {
        let mut rest = arm;
        let mut out = vec![0; self.elements.len()];
        for (i, e) in self.elements.iter().enumerate().rev() {
            let n = e.variants.len().max(1);
            out[i] = rest % n;
            rest /= n;
        }
        out
    }

    pub fn arm(&self, index: usize) -> Arm {
        let variant_indices = self.arm_variants(index);
        let chosen: Vec<&Variant> =
            self.elements.iter().zip(&variant_indices).map(|(e, &v)| &e.variants[v]).collect();
        let id = if chosen.len() == 1 {
            chosen[0].id.to_string()
        } else {
            combination_id(self.id, index)
        };
        Arm {
            index,
            id,
            name: chosen.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(" + "),
            is_control: chosen.iter().all(|v| v.is_control),
            variant_indices,
        }
    }

    pub fn arms(&self) -> Vec<Arm> {
        (0..self.arm_count()).map(|i| self.arm(i)).collect()
    }

    /// The index of the control arm: the arm whose variants are all controls, else arm 0.
    pub fn control_arm(&self) -> usize {
        (0..self.arm_count()).find(|&i| self.arm(i).is_control).unwrap_or(0)
    }

    /// The fixed split: each arm's share, the product of its variants' normalised weights.
    pub fn fixed_weights(&self) -> Vec<f64> {
        (0..self.arm_count())
            .map(|a| {
                self.arm_variants(a)
                    .iter()
                    .zip(&self.elements)
                    .map(|(&v, e)| e.variants[v].weight)
                    .product()
            })
            .collect()
    }

    pub fn find_arm_by_variant(&self, variant_id: Uuid) -> Option<usize> {
        if self.elements.len() != 1 {
            return None;
        }
        self.elements[0].variants.iter().position(|v| v.id == variant_id)
    }

    pub fn has_variant(&self, variant_id: Uuid) -> bool {
        self.elements.iter().flat_map(|e| &e.variants).any(|v| v.id == variant_id)
    }
}

/// A stable id for a combination arm: the experiment id with its last bytes replaced by the
/// arm index, so it is a UUID string, unique within the experiment and the same every time.
fn combination_id(exp: Uuid, index: usize) -> String {
    let mut b = *exp.as_bytes();
    b[6] = (b[6] & 0x0f) | 0x80; // mark it apart from real v4 ids
    b[14..16].copy_from_slice(&(index as u16).to_be_bytes());
    Uuid::from_bytes(b).to_string()
}

// ---------------------------------------------------------------------------------------
// Input and validation

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    /// Accepted and ignored, so a client may send back what it read.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    pub name: Option<String>,
    #[serde(default)]
    pub is_control: Option<bool>,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub weight: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementInput {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    pub name: Option<String>,
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub variants: Option<Vec<VariantInput>>,
}

/// The body of POST and PATCH /experiments. Every field is optional here so that both
/// share one shape; `build` says which ones creation requires.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentInput {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub exp_type: Option<ExpType>,
    /// `email` or `push`; required for (and only for) `type: campaign`.
    pub channel: Option<Channel>,
    pub allocation: Option<Allocation>,
    pub traffic_allocation: Option<f64>,
    #[serde(default, deserialize_with = "double_option")]
    pub target_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub goal: Option<Option<Goal>>,
    pub selector: Option<String>,
    pub variants: Option<Vec<VariantInput>>,
    pub elements: Option<Vec<ElementInput>>,
    pub seed: Option<String>,
    pub floor: Option<f64>,
    pub burn_in: Option<u64>,
}

/// Distinguishes a field that is absent (leave it) from one that is `null` (clear it).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), message: message.into() }
}

pub struct Defaults {
    pub floor: f64,
    pub burn_in: u64,
}

impl ExperimentInput {
    /// Fields that define the arms or the buckets: frozen once the experiment leaves draft.
    /// Traffic share, goal, floor and burn-in may change while it runs (existing visitors
    /// keep their sticky answers).
    pub fn touches_structure(&self) -> bool {
        self.exp_type.is_some()
            || self.channel.is_some()
            || self.allocation.is_some()
            || self.selector.is_some()
            || self.variants.is_some()
            || self.elements.is_some()
            || self.seed.is_some()
    }

    pub fn touches_allocation(&self) -> bool {
        self.floor.is_some() || self.burn_in.is_some()
    }
}

/// A new experiment from a creation request.
pub fn build(
    input: ExperimentInput,
    id: Uuid,
    owner: Uuid,
    now: i64,
    defaults: &Defaults,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<Experiment, Invalid> {
    let name = input.name.clone().ok_or_else(|| invalid("name", "is required"))?;
    let mut exp = Experiment {
        id,
        owner,
        seed: id.to_string(),
        name,
        description: String::new(),
        exp_type: input.exp_type.unwrap_or(ExpType::AbTest),
        channel: None,
        allocation: Allocation::Adaptive,
        status: Status::Draft,
        traffic_allocation: 1.0,
        target_url: None,
        goal: None,
        elements: vec![],
        floor: defaults.floor,
        burn_in: defaults.burn_in,
        winner_variant_id: None,
        created_at: now,
        updated_at: now,
        started_at: None,
        completed_at: None,
        archived_at: None,
    };
    if input.variants.is_none() && input.elements.is_none() {
        let field = match exp.exp_type {
            ExpType::AbTest | ExpType::Campaign => "variants",
            ExpType::MultiElement => "elements",
        };
        return Err(invalid(field, "is required"));
    }
    apply(&mut exp, input, new_id)?;
    Ok(exp)
}

/// Applies a creation or PATCH request to `exp` and validates the result. Callers check the
/// status first: structure may change only while the experiment is a draft.
pub fn apply(
    exp: &mut Experiment,
    input: ExperimentInput,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<(), Invalid> {
    if let Some(n) = input.name {
        exp.name = check_name("name", &n)?;
    }
    if let Some(d) = input.description {
        if d.chars().count() > 5000 {
            return Err(invalid("description", "must be at most 5000 characters"));
        }
        text::check_text("description", &d, text::Lines::Many)?;
        exp.description = d;
    }
    if let Some(t) = input.exp_type {
        if t != exp.exp_type && input.variants.is_none() && input.elements.is_none() {
            return Err(invalid("type", "changing the type needs new variants or elements"));
        }
        exp.exp_type = t;
    }
    if let Some(c) = input.channel {
        exp.channel = Some(c);
    }
    if let Some(a) = input.allocation {
        exp.allocation = a;
    }
    if let Some(t) = input.traffic_allocation {
        if !(t > 0.0 && t <= 1.0) {
            return Err(invalid("traffic_allocation", "must be greater than 0 and at most 1"));
        }
        exp.traffic_allocation = t;
    }
    if let Some(u) = input.target_url {
        if let Some(u) = &u
            && (u.is_empty() || u.len() > 2048)
        {
            return Err(invalid("target_url", "must be 1 to 2048 characters"));
        }
        exp.target_url = u;
    }
    if let Some(g) = input.goal {
        if let Some(g) = &g {
            let (field, value) = match g {
                Goal::Click { selector } => ("goal.selector", Some(selector)),
                Goal::Pageview { url } => ("goal.url", Some(url)),
                Goal::Custom { name } => ("goal.name", Some(name)),
                Goal::Open => ("goal.type", None),
            };
            // A campaign's click is on one of its links: it names no selector.
            let campaign_click = exp.exp_type == ExpType::Campaign
                && matches!(g, Goal::Click { selector } if selector.is_empty());
            if let Some(value) = value
                && !campaign_click
            {
                if value.trim().is_empty() || value.len() > 2048 {
                    return Err(invalid(field, "must be 1 to 2048 characters"));
                }
                text::check_label(field, value)?;
            }
        }
        exp.goal = g;
    }
    if let Some(s) = input.seed {
        if s.is_empty() || s.len() > 128 {
            return Err(invalid("seed", "must be 1 to 128 characters"));
        }
        exp.seed = s;
    }
    if let Some(f) = input.floor {
        if !(0.0..0.5).contains(&f) {
            return Err(invalid("floor", "must be at least 0 and below 0.5"));
        }
        exp.floor = f;
    }
    if let Some(b) = input.burn_in {
        exp.burn_in = b;
    }

    match exp.exp_type {
        ExpType::AbTest | ExpType::Campaign => {
            if input.elements.is_some() {
                return Err(invalid(
                    "elements",
                    "is for multi_element; an ab_test or a campaign takes `variants`",
                ));
            }
            if let Some(vs) = input.variants {
                let old = exp.elements.first();
                let element = Element {
                    id: old.map(|e| e.id).unwrap_or_else(&mut *new_id),
                    name: old.map(|e| e.name.clone()).unwrap_or_else(|| "Main".into()),
                    selector: input
                        .selector
                        .clone()
                        .or_else(|| old.and_then(|e| e.selector.clone())),
                    variants: build_variants("variants", vs, new_id)?,
                };
                exp.elements = vec![element];
            } else if let Some(sel) = input.selector
                && let Some(e) = exp.elements.first_mut()
            {
                e.selector = Some(sel);
            }
        }
        ExpType::MultiElement => {
            if input.variants.is_some() {
                return Err(invalid(
                    "variants",
                    "is for ab_test; a multi_element takes `elements`",
                ));
            }
            if let Some(es) = input.elements {
                if es.is_empty() {
                    return Err(invalid("elements", "needs at least one element"));
                }
                if es.len() > MAX_ELEMENTS {
                    return Err(invalid("elements", format!("at most {MAX_ELEMENTS} elements")));
                }
                let mut elements = Vec::with_capacity(es.len());
                for (i, e) in es.into_iter().enumerate() {
                    let field = format!("elements[{i}]");
                    let name =
                        e.name.ok_or_else(|| invalid(format!("{field}.name"), "is required"))?;
                    let name = check_name(&format!("{field}.name"), &name)?;
                    if elements.iter().any(|o: &Element| o.name == name) {
                        return Err(invalid(
                            format!("{field}.name"),
                            "must be unique within the experiment",
                        ));
                    }
                    let vs = e
                        .variants
                        .ok_or_else(|| invalid(format!("{field}.variants"), "is required"))?;
                    elements.push(Element {
                        id: new_id(),
                        name,
                        selector: e.selector,
                        variants: build_variants(&format!("{field}.variants"), vs, new_id)?,
                    });
                }
                let combos = elements
                    .iter()
                    .try_fold(1usize, |acc, e| acc.checked_mul(e.variants.len()))
                    .unwrap_or(usize::MAX);
                if combos > MAX_COMBINATIONS {
                    return Err(invalid(
                        "elements",
                        format!("{combos} combinations; at most {MAX_COMBINATIONS}"),
                    ));
                }
                exp.elements = elements;
            }
        }
    }
    if exp.elements.is_empty() {
        let field = if exp.exp_type == ExpType::MultiElement { "elements" } else { "variants" };
        return Err(invalid(field, "is required"));
    }
    check_campaign(exp)?;
    for (i, e) in exp.elements.iter().enumerate() {
        if let Some(s) = &e.selector {
            // Selectors go into a stylesheet and a script tag on customers' pages.
            if s.trim().is_empty() || s.len() > 1024 || s.contains(['{', '}', '<']) {
                let field = if exp.exp_type != ExpType::MultiElement {
                    "selector".to_string()
                } else {
                    format!("elements[{i}].selector")
                };
                return Err(invalid(
                    field,
                    "must be a CSS selector of 1 to 1024 characters without { } <",
                ));
            }
        }
    }
    Ok(())
}

/// What sets a campaign apart: a channel, a goal that a message can meet, every recipient
/// in (a wave's recipients are chosen by the sender), and nothing of a page's.
fn check_campaign(exp: &mut Experiment) -> Result<(), Invalid> {
    if exp.exp_type != ExpType::Campaign {
        if exp.channel.is_some() {
            return Err(invalid("channel", "is for campaigns (type `campaign`) only"));
        }
        return match &exp.goal {
            Some(Goal::Open) => Err(invalid("goal.type", "`open` is for campaigns only")),
            _ => Ok(()),
        };
    }
    if exp.channel.is_none() {
        return Err(invalid("channel", "is required for a campaign: `email` or `push`"));
    }
    match &exp.goal {
        None => exp.goal = Some(Goal::Open),
        Some(Goal::Open | Goal::Click { .. }) => {}
        Some(_) => {
            return Err(invalid("goal.type", "a campaign's goal is `open` or `click`"));
        }
    }
    if exp.traffic_allocation < 1.0 {
        return Err(invalid("traffic_allocation", "a campaign sends to every recipient: 1"));
    }
    if exp.target_url.is_some() {
        return Err(invalid("target_url", "is for pages; a campaign has none"));
    }
    if exp.elements.first().is_some_and(|e| e.selector.is_some()) {
        return Err(invalid("selector", "is for pages; a campaign has none"));
    }
    Ok(())
}

fn check_name(field: &str, name: &str) -> Result<String, Invalid> {
    let trimmed = name.trim();
    let n = trimmed.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(invalid(field, format!("must be 1 to {MAX_NAME} characters")));
    }
    text::check_label(field, trimmed)?;
    Ok(trimmed.to_string())
}

fn build_variants(
    field: &str,
    input: Vec<VariantInput>,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<Vec<Variant>, Invalid> {
    if input.len() < MIN_VARIANTS || input.len() > MAX_VARIANTS {
        return Err(invalid(field, format!("needs {MIN_VARIANTS} to {MAX_VARIANTS} variants")));
    }
    let mut out: Vec<Variant> = Vec::with_capacity(input.len());
    for (i, v) in input.into_iter().enumerate() {
        let f = format!("{field}[{i}]");
        let name = v.name.ok_or_else(|| invalid(format!("{f}.name"), "is required"))?;
        let name = check_name(&format!("{f}.name"), &name)?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(format!("{f}.name"), "must be unique within its element"));
        }
        let weight = v.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0 && weight <= 1e6) {
            return Err(invalid(format!("{f}.weight"), "must be a positive number up to 1e6"));
        }
        let content = v.content.unwrap_or_default();
        check_content(&format!("{f}.content"), &content)?;
        out.push(Variant {
            id: new_id(),
            name,
            content,
            is_control: v.is_control.unwrap_or(false),
            weight,
        });
    }
    let controls = out.iter().filter(|v| v.is_control).count();
    if controls > 1 {
        return Err(invalid(field, "at most one variant may be the control"));
    }
    if controls == 0 {
        out[0].is_control = true;
    }
    let total: f64 = out.iter().map(|v| v.weight).sum();
    for v in &mut out {
        v.weight /= total;
    }
    Ok(out)
}

fn check_content(field: &str, c: &Content) -> Result<(), Invalid> {
    let texts = [&c.text, &c.html, &c.redirect];
    if texts.iter().any(|t| t.as_ref().is_some_and(|t| t.len() > MAX_TEXT)) {
        return Err(invalid(field, format!("text fields must be at most {MAX_TEXT} bytes")));
    }
    if let Some(r) = &c.redirect
        && !(r.starts_with("https://") || r.starts_with("http://") || r.starts_with('/'))
    {
        return Err(invalid(format!("{field}.redirect"), "must be an http(s) URL or a path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    fn make(body: serde_json::Value) -> Result<Experiment, Invalid> {
        let input: ExperimentInput = serde_json::from_value(body).unwrap();
        let d = Defaults { floor: 0.01, burn_in: 0 };
        build(input, Uuid::from_u128(999), Uuid::from_u128(7), 0, &d, &mut ids())
    }

    #[test]
    fn ab_test_shortcut_normalises_weights_and_marks_control() {
        let e = make(json!({"name": "t", "variants": [
            {"name": "A", "weight": 1.0}, {"name": "B", "weight": 3.0}]}))
        .unwrap();
        assert_eq!(e.elements.len(), 1);
        let w: Vec<f64> = e.elements[0].variants.iter().map(|v| v.weight).collect();
        assert_eq!(w, vec![0.25, 0.75]);
        assert!(e.elements[0].variants[0].is_control);
        assert_eq!(e.fixed_weights(), vec![0.25, 0.75]);
    }

    #[test]
    fn validation_names_the_field() {
        let e = make(json!({"name": "t", "variants": [{"name": "A"}]})).unwrap_err();
        assert_eq!(e.field, "variants");
        let e = make(json!({"name": "", "variants": [{"name": "A"}, {"name": "B"}]})).unwrap_err();
        assert_eq!(e.field, "name");
        let e = make(json!({"name": "x", "traffic_allocation": 1.5,
            "variants": [{"name": "A"}, {"name": "B"}]}))
        .unwrap_err();
        assert_eq!(e.field, "traffic_allocation");
        let e =
            make(json!({"name": "x", "variants": [{"name": "A"}, {"name": "B", "weight": -1}]}))
                .unwrap_err();
        assert_eq!(e.field, "variants[1].weight");
    }

    #[test]
    fn names_labels_and_the_description_refuse_control_and_bidi_characters() {
        let two = || json!([{"name": "A"}, {"name": "B"}]);
        let field = |body: serde_json::Value| make(body).unwrap_err().field;
        assert_eq!(field(json!({"name": "\u{1b}[31mred", "variants": two()})), "name");
        let vs = json!([{"name": "A"}, {"name": "B\u{202E}"}]);
        assert_eq!(field(json!({"name": "x", "variants": vs})), "variants[1].name");
        let body = json!({"name": "x", "description": "bell\u{7}", "variants": two()});
        assert_eq!(field(body), "description");
        let body = json!({"name": "x", "goal": {"type": "custom", "name": "g\u{0}"},
            "variants": two()});
        assert_eq!(field(body), "goal.name");
        let els = json!([{"name": "CTA", "variants": two()},
            {"name": "\u{2066}Copy", "variants": two()}]);
        assert_eq!(
            field(json!({"name": "m", "type": "multi_element", "elements": els})),
            "elements[1].name"
        );
        let vs = json!([{"name": "A"}, {"name": "B\u{9b}"}]);
        let els = json!([{"name": "CTA", "variants": vs}]);
        assert_eq!(
            field(json!({"name": "m", "type": "multi_element", "elements": els})),
            "elements[0].variants[1].name"
        );
        let ok = make(json!({"name": "Größe 🎉", "description": "line one\n\tline two",
            "variants": [{"name": "שלום"}, {"name": "B"}]}));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn element_names_and_variant_names_are_unique() {
        let two = || json!([{"name": "A"}, {"name": "B"}]);
        let els = json!([{"name": "CTA", "variants": two()}, {"name": "Copy", "variants": two()},
            {"name": " CTA ", "variants": two()}]);
        let e = make(json!({"name": "m", "type": "multi_element", "elements": els})).unwrap_err();
        assert_eq!(e.field, "elements[2].name");
        assert!(e.message.contains("unique"), "{}", e.message);
        let vs = json!([{"name": "A"}, {"name": "B"}, {"name": "A"}]);
        let e = make(json!({"name": "x", "variants": vs})).unwrap_err();
        assert_eq!(e.field, "variants[2].name");
        let vs = json!([{"name": "A"}, {"name": "A"}]);
        let els = json!([{"name": "CTA", "variants": vs}]);
        let e = make(json!({"name": "m", "type": "multi_element", "elements": els})).unwrap_err();
        assert_eq!(e.field, "elements[0].variants[1].name");
    }

    #[test]
    fn combinations_enumerate_in_reading_order() {
        let v3 = json!([{"name": "A"}, {"name": "B"}, {"name": "C"}]);
        let vxyz = json!([{"name": "X"}, {"name": "Y"}, {"name": "Z"}]);
        let e = make(json!({"name": "m", "type": "multi_element", "elements": [
            {"name": "CTA", "selector": "#cta", "variants": v3},
            {"name": "Copy", "selector": "h1", "variants": vxyz}]}))
        .unwrap();
        assert_eq!(e.arm_count(), 9);
        assert_eq!(e.arm(5).name, "B + Z");
        assert_eq!(e.arm(5).variant_indices, vec![1, 2]);
        assert_eq!(e.control_arm(), 0);
        let ids: std::collections::HashSet<String> = e.arms().into_iter().map(|a| a.id).collect();
        assert_eq!(ids.len(), 9);
        let w: f64 = e.fixed_weights().iter().sum();
        assert!((w - 1.0).abs() < 1e-12);
    }

    #[test]
    fn too_many_combinations_is_refused() {
        let vs: Vec<_> = (0..4).map(|i| json!({"name": format!("v{i}")})).collect();
        let els: Vec<_> =
            (0..5).map(|i| json!({"name": format!("e{i}"), "variants": vs})).collect();
        let e = make(json!({"name": "m", "type": "multi_element", "elements": els})).unwrap_err();
        assert_eq!(e.field, "elements");
    }

    #[test]
    fn transitions() {
        assert_eq!(Transition::Start.apply(Status::Draft), Some(Status::Running));
        assert_eq!(Transition::Start.apply(Status::Running), None);
        assert_eq!(Transition::Complete.apply(Status::Paused), Some(Status::Completed));
        assert_eq!(Transition::Resume.apply(Status::Completed), None);
    }
}
