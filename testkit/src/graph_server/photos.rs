//! The photo operations: upload (`PUT`/`PATCH …/photo/$value`), delete, metadata (`/photo`,
//! with the read-your-write delay and the legacy placeholder), `/photos` and one size.

use std::sync::Arc;

use serde_json::{json, Value};

use super::config::{codes, STANDARD_SIZES};
use super::images::{detect_image, image_size};
use super::reply::{graph_error, Corr, Op, Payload, Reply};
use super::state::{Photo, ServerState};

pub(super) fn image_not_found(corr: &Corr) -> Reply {
    graph_error(
        404,
        codes::IMAGE_NOT_FOUND,
        "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
        corr,
    )
}

pub(super) fn upload_photo(st: &mut ServerState, idx: usize, op: &Op, corr: &Corr) -> Reply {
    let body = &op.body;
    let detected = detect_image(body);
    let with_detected = |mut r: Reply| {
        r.detected_image = detected;
        r
    };
    if st.cfg.cloud_updates_disabled {
        return with_detected(photo_updates_disabled(corr));
    }
    if write_denied(st, idx) {
        return with_detected(photo_write_denied(st, corr));
    }
    if body.len() > st.cfg.max_photo_bytes {
        let msg = format!(
            "The photo is {} bytes; the limit is {} bytes (4 MB).",
            body.len(),
            st.cfg.max_photo_bytes
        );
        return with_detected(graph_error(
            413,
            codes::REQUEST_ENTITY_TOO_LARGE,
            &msg,
            corr,
        ));
    }
    if body.is_empty() {
        return graph_error(400, codes::BAD_REQUEST, "The photo is empty.", corr);
    }
    let Some(kind) = detected else {
        return graph_error(
            400,
            codes::BAD_REQUEST,
            "The photo is not a JPEG or PNG image.",
            corr,
        );
    };
    if st.cfg.strict_content_type {
        let sent = op.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if sent.as_deref() != Some(kind) {
            let msg = format!(
                "Content-Type {:?} does not match the image data ({kind}).",
                sent.unwrap_or_default()
            );
            return with_detected(graph_error(400, codes::BAD_REQUEST, &msg, corr));
        }
    }
    let size = image_size(body);
    if let (Some(min), Some((w, _))) = (st.cfg.min_photo_width, size) {
        if w < min {
            return with_detected(graph_error(
                400,
                codes::WIDTH_TOO_SMALL,
                "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ProfileBadRequestException' was thrown.",
                corr,
            ));
        }
    }
    // Graph re-encodes what it stores: other bytes, the same picture.
    let (body, kind) = match st.cfg.reencode_uploads.then(|| reencode(body)).flatten() {
        Some(b) => (b, "image/jpeg"),
        None => (body.clone(), kind),
    };
    let size = image_size(&body).or(size);
    let previous = st.users[idx].photo.clone();
    let etag = st.new_etag(&body, previous.as_ref().map(|p| p.etag.as_str()));
    let stale_reads = st.cfg.stale_metadata_reads;
    let user = &mut st.users[idx];
    user.photo = Some(Photo {
        bytes: Arc::new(body),
        etag,
        content_type: kind,
        size,
    });
    user.uploads += 1;
    user.stale = (stale_reads > 0).then_some((previous, stale_reads));
    with_detected(Reply::empty(200))
}

/// The picture decoded and written again as a JPEG at another quality (Graph's re-encoding);
/// `None` when it does not decode (the bytes are then stored as sent).
fn reencode(bytes: &[u8]) -> Option<Vec<u8>> {
    let img = image::load_from_memory(bytes).ok()?.to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 83)
        .encode_image(&img)
        .ok()?;
    Some(out)
}

fn photo_updates_disabled(corr: &Corr) -> Reply {
    graph_error(
        403,
        codes::ACCESS_DENIED,
        "Photo updates through cloud services are disabled for this tenant (photoUpdateSettings source is onPremises).",
        corr,
    )
}

/// Whether [`GraphServerConfig::photo_write_denied`] names this user.
fn write_denied(st: &ServerState, idx: usize) -> bool {
    let u = &st.users[idx];
    st.cfg
        .photo_write_denied
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&u.id) || k.eq_ignore_ascii_case(&u.upn))
}

fn photo_write_denied(st: &ServerState, corr: &Corr) -> Reply {
    graph_error(
        403,
        &st.cfg.denied_code,
        "Access is denied. Check credentials and try again.",
        corr,
    )
}

pub(super) fn delete_photo(st: &mut ServerState, idx: usize, corr: &Corr) -> Reply {
    if st.cfg.delete_not_supported {
        return graph_error(
            405,
            codes::METHOD_NOT_ALLOWED,
            "Method is not allowed",
            corr,
        );
    }
    if st.cfg.cloud_updates_disabled {
        return photo_updates_disabled(corr);
    }
    if write_denied(st, idx) {
        return photo_write_denied(st, corr);
    }
    let stale_reads = st.cfg.stale_metadata_reads;
    let user = &mut st.users[idx];
    // Contract choice: the contract does not say what deleting an absent photo answers; the
    // photo service throws ImageNotFoundException for absent photos, so 404 ImageNotFound.
    let Some(previous) = user.photo.take() else {
        return image_not_found(corr);
    };
    user.deletes += 1;
    user.stale = (stale_reads > 0).then_some((Some(previous), stale_reads));
    Reply::empty(200)
}

/// Sizes Graph would serve for a photo: the standard sizes up to the smaller side.
fn available_sizes(p: &Photo) -> Vec<u32> {
    match p.size {
        Some((w, h)) => STANDARD_SIZES
            .iter()
            .copied()
            .filter(|s| *s <= w.min(h))
            .collect(),
        None => Vec::new(),
    }
}

/// Contract choice: `/photo` describes "the largest available size", which is the stored
/// photo itself: its real width and height (read from the stored image's header, after the
/// re-encoding), as Graph reports a 96 x 96 photo that Entra Connect copied from AD's
/// thumbnail. A size of `/photos` is the standard square it names. `$value` always returns
/// the stored bytes (the fake does not resize).
fn photo_entity(p: &Photo, base: &str, user_id: &str, size: Option<u32>) -> Value {
    let (id, w, h) = match (size, p.size) {
        (Some(s), _) => (format!("{s}X{s}"), json!(s), json!(s)),
        (None, Some((w, h))) => (format!("{w}X{h}"), json!(w), json!(h)),
        (None, None) => ("0X0".to_string(), Value::Null, Value::Null),
    };
    let (context, odata_id) = match size {
        None => (
            format!("{base}/v1.0/$metadata#users('{user_id}')/photo/$entity"),
            format!("{base}/v1.0/users('{user_id}')/photo"),
        ),
        Some(_) => (
            format!("{base}/v1.0/$metadata#users('{user_id}')/photos/$entity"),
            format!("{base}/v1.0/users('{user_id}')/photos('{id}')"),
        ),
    };
    json!({
        "@odata.context": context,
        "@odata.id": odata_id,
        "@odata.mediaContentType": p.content_type,
        "@odata.mediaEtag": p.etag,
        "id": id,
        "width": w,
        "height": h,
    })
}

pub(super) fn photo_metadata(st: &mut ServerState, idx: usize, base: &str, corr: &Corr) -> Reply {
    let legacy = st.cfg.legacy_placeholder;
    let user = &mut st.users[idx];
    let mut shown = user.photo.clone();
    if let Some((previous, left)) = &mut user.stale {
        if *left > 0 {
            *left -= 1;
            shown = previous.clone();
        }
    }
    match shown {
        Some(p) => Reply::odata(200, photo_entity(&p, base, &user.id, None)),
        None if legacy => Reply::odata(
            200,
            json!({
                "@odata.context": format!("{base}/v1.0/$metadata#users('{}')/photo/$entity", user.id),
                "@odata.id": format!("{base}/v1.0/users('{}')/photo", user.id),
                "@odata.mediaContentType": "image/gif",
                "@odata.mediaEtag": "",
                "id": "1X1",
                "width": 1,
                "height": 1,
            }),
        ),
        None => image_not_found(corr),
    }
}

pub(super) fn photo_list(st: &ServerState, idx: usize, base: &str) -> Reply {
    let user = &st.users[idx];
    let value: Vec<Value> = match &user.photo {
        Some(p) => available_sizes(p)
            .into_iter()
            .map(|s| photo_entity(p, base, &user.id, Some(s)))
            .collect(),
        None => Vec::new(),
    };
    Reply::odata(
        200,
        json!({
            "@odata.context": format!("{base}/v1.0/$metadata#users('{}')/photos", user.id),
            "value": value,
        }),
    )
}

pub(super) fn photo_size(
    st: &ServerState,
    idx: usize,
    size_id: &str,
    base: &str,
    bytes: bool,
    corr: &Corr,
) -> Reply {
    let user = &st.users[idx];
    let Some(p) = &user.photo else {
        return image_not_found(corr);
    };
    let wanted = size_id
        .to_ascii_lowercase()
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match wanted {
        Some((a, b)) if a == b && available_sizes(p).contains(&a) => {
            if bytes {
                Reply::new(200, Payload::Bytes(p.bytes.clone(), p.content_type))
            } else {
                Reply::odata(200, photo_entity(p, base, &user.id, Some(a)))
            }
        }
        _ => image_not_found(corr),
    }
}
