//! JSON batching (`POST /v1.0/$batch`, contract 3): the envelope's checks, `dependsOn`
//! levels, items run through admission like direct requests (a few at a time), 424 for items
//! whose dependency failed, and the item answers (binary bodies as base64).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::admission::gated;
use super::config::codes;
use super::recorder::RequestKind;
use super::reply::{graph_error, query_pairs, Corr, Op, Payload, Reply};
use super::routes::{decoded_segments, method_not_allowed};
use super::state::{Inner, TokenInfo};

#[derive(Clone, Debug)]
struct BatchItem {
    id: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn batch_bad_request(message: &str, corr: &Corr) -> Reply {
    graph_error(400, codes::BAD_REQUEST, message, corr)
}

fn parse_batch(v: &Value, max: usize, corr: &Corr) -> Result<Vec<BatchItem>, Reply> {
    let invalid = || batch_bad_request("Invalid batch payload format.", corr);
    let reqs = v
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(invalid)?;
    if reqs.is_empty() {
        return Err(invalid());
    }
    if reqs.len() > max {
        return Err(batch_bad_request(
            "Number of requests inside batch exceeds the limit.",
            corr,
        ));
    }
    let mut items: Vec<BatchItem> = Vec::new();
    for r in reqs {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(id), Some(method), Some(url)) = (s("id"), s("method"), s("url")) else {
            return Err(batch_bad_request(
                "Each request in a batch needs string 'id', 'method' and 'url'.",
                corr,
            ));
        };
        if items.iter().any(|i| i.id.eq_ignore_ascii_case(&id)) {
            return Err(batch_bad_request(
                &format!("Batch request contains duplicate request id '{id}'."),
                corr,
            ));
        }
        let mut headers = Vec::new();
        match r.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Some(v) = v.as_str() else {
                        return Err(invalid());
                    };
                    headers.push((k.to_ascii_lowercase(), v.to_string()));
                }
            }
            Some(_) => return Err(invalid()),
        }
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.iter().any(|(k, _)| k == "content-type") {
            return Err(batch_bad_request(
                &format!("Write request id : {id} does not contain Content-Type header or body."),
                corr,
            ));
        }
        let depends_on = match r.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => {
                let mut d = Vec::new();
                for x in a {
                    d.push(x.as_str().ok_or_else(invalid)?.to_string());
                }
                d
            }
            Some(_) => return Err(invalid()),
        };
        if url.to_ascii_lowercase().starts_with("http") {
            return Err(batch_bad_request(
                &format!("Request id {id}: the url must be relative to the version root."),
                corr,
            ));
        }
        items.push(BatchItem {
            id,
            method: method.to_ascii_uppercase(),
            url,
            headers,
            body,
            depends_on,
        });
    }
    for it in &items {
        for d in &it.depends_on {
            if d.eq_ignore_ascii_case(&it.id) || !items.iter().any(|x| x.id.eq_ignore_ascii_case(d))
            {
                return Err(batch_bad_request(
                    &format!("Request id {} depends on '{d}', which is not another request of this batch.", it.id),
                    corr,
                ));
            }
        }
    }
    Ok(items)
}

/// Dependency depth of each item (0: no dependencies); `None` on a cycle.
fn batch_levels(items: &[BatchItem]) -> Option<Vec<usize>> {
    let n = items.len();
    let idx = |id: &str| items.iter().position(|x| x.id.eq_ignore_ascii_case(id));
    let mut level: Vec<Option<usize>> = vec![None; n];
    for _round in 0..=n {
        let mut changed = false;
        for i in 0..n {
            if level[i].is_some() {
                continue;
            }
            let deps: Option<Vec<usize>> = items[i]
                .depends_on
                .iter()
                .map(|d| idx(d).and_then(|j| level[j]))
                .collect();
            if let Some(deps) = deps {
                level[i] = Some(deps.into_iter().map(|l| l + 1).max().unwrap_or(0));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    level.into_iter().collect()
}

fn decode_base64_any(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

pub(super) async fn batch(inner: &Arc<Inner>, op: &Op, token: &TokenInfo, corr: &Corr) -> Reply {
    if op.method != "POST" {
        return method_not_allowed(corr);
    }
    let (max_body, max_items, parallelism) = {
        let st = inner.lock();
        (
            st.cfg.max_batch_body_bytes,
            st.cfg.max_batch_requests,
            st.cfg.batch_parallelism.max(1),
        )
    };
    if op.body.len() > max_body {
        return graph_error(
            413,
            codes::REQUEST_ENTITY_TOO_LARGE,
            &format!(
                "The batch body is {} bytes; the limit is {max_body} bytes.",
                op.body.len()
            ),
            corr,
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&op.body) else {
        return batch_bad_request("Invalid batch payload format.", corr);
    };
    let items = match parse_batch(&v, max_items, corr) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(levels) = batch_levels(&items) else {
        return batch_bad_request("The dependsOn of this batch form a cycle.", corr);
    };
    let envelope_crid = op.header("client-request-id").map(str::to_string);
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses: Vec<Value> = Vec::new();
    let max_level = levels.iter().copied().max().unwrap_or(0);
    for level in 0..=max_level {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallelism));
        let mut set = tokio::task::JoinSet::new();
        for (item, _) in items.iter().zip(&levels).filter(|(_, l)| **l == level) {
            let failed_dep = item.depends_on.iter().find(|d| {
                statuses
                    .get(&d.to_ascii_lowercase())
                    .is_none_or(|s| !(200..300).contains(s))
            });
            let item_op = batch_item_op(item, &corr.request_id);
            let item_corr = Corr::new(
                item_op
                    .header("client-request-id")
                    .or(envelope_crid.as_deref()),
            );
            if let Some(d) = failed_dep {
                let mut reply = graph_error(
                    424,
                    codes::FAILED_DEPENDENCY,
                    &format!("Dependent request '{d}' failed."),
                    &item_corr,
                );
                reply.app_id = Some(token.app_id.clone());
                inner.record(&item_op, &item_corr, &reply);
                statuses.insert(item.id.to_ascii_lowercase(), 424);
                responses.push(item_response(&item.id, &reply));
                continue;
            }
            let inner = inner.clone();
            let token = token.clone();
            let sem = sem.clone();
            let item = item.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let reply = run_batch_item(&inner, &item, item_op, &token, &item_corr).await;
                (item.id.clone(), reply)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((id, reply)) = joined else { continue };
            statuses.insert(id.to_ascii_lowercase(), reply.status);
            responses.push(item_response(&id, &reply));
        }
    }
    Reply::new(
        200,
        Payload::Json(json!({ "responses": responses }), "application/json"),
    )
}

fn batch_item_op(item: &BatchItem, batch_request_id: &str) -> Op {
    let url = if item.url.starts_with('/') {
        item.url.clone()
    } else {
        format!("/{}", item.url)
    };
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (url, None),
    };
    Op {
        kind: RequestKind::BatchItem {
            batch_request_id: batch_request_id.to_string(),
            item_id: item.id.clone(),
        },
        method: item.method.clone(),
        path: format!("/v1.0{path}"),
        params: query.as_deref().map(query_pairs).unwrap_or_default(),
        query,
        headers: item.headers.clone(),
        body: Vec::new(),
        authorization_present: true,
        received_at: Instant::now(),
        received_wall: SystemTime::now(),
    }
}

async fn run_batch_item(
    inner: &Arc<Inner>,
    item: &BatchItem,
    mut op: Op,
    token: &TokenInfo,
    corr: &Corr,
) -> Reply {
    op.received_at = Instant::now();
    op.received_wall = SystemTime::now();
    let is_json = op
        .header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    let body = match &item.body {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if !is_json => decode_base64_any(s).ok_or("not base64"),
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v) if is_json => Ok(serde_json::to_vec(v).unwrap_or_default()),
        Some(_) => Err("a JSON body needs a JSON Content-Type"),
    };
    let segs = decoded_segments(&op.path);
    let mut reply = match body {
        Err(why) => graph_error(
            400,
            codes::BAD_REQUEST,
            &format!("Invalid body of request id {}: {why}.", item.id),
            corr,
        ),
        Ok(_)
            if segs
                .get(1)
                .is_some_and(|s| s.eq_ignore_ascii_case("$batch")) =>
        {
            graph_error(
                400,
                codes::BAD_REQUEST,
                "A batch cannot contain a batch.",
                corr,
            )
        }
        Ok(b) => {
            op.body = b;
            gated(inner, &op, token, corr).await
        }
    };
    reply.app_id = Some(token.app_id.clone());
    inner.record(&op, corr, &reply);
    reply
}

fn item_response(id: &str, reply: &Reply) -> Value {
    let mut headers = Map::new();
    if let Some(ct) = reply.payload.content_type() {
        headers.insert("Content-Type".to_string(), json!(ct));
    }
    for (k, v) in &reply.headers {
        let name = if k == "retry-after" {
            "Retry-After"
        } else {
            k.as_str()
        };
        headers.insert(name.to_string(), json!(v));
    }
    let mut m = Map::new();
    m.insert("id".to_string(), json!(id));
    m.insert("status".to_string(), json!(reply.status));
    m.insert("headers".to_string(), Value::Object(headers));
    match &reply.payload {
        Payload::Empty => {}
        Payload::Json(v, _) => {
            m.insert("body".to_string(), v.clone());
        }
        Payload::Bytes(b, _) => {
            m.insert("body".to_string(), json!(STANDARD.encode(b.as_slice())));
        }
    }
    Value::Object(m)
}
