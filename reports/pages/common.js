// What both report pages share: the API key (from ?api_key= once, then this tab's session
// storage, never the address bar), calls to the API with it, and messages for people.

const KEY_STORE = "ingest-mesh.reports.api-key"

/** The key this tab uses: ?api_key= moves it into session storage and out of the address bar. */
export const takeKey = () => {
  const url = new URL(location.href)
  const fromUrl = url.searchParams.get("api_key")
  if (fromUrl) {
    sessionStorage.setItem(KEY_STORE, fromUrl)
    url.searchParams.delete("api_key")
    history.replaceState(null, "", url)
  }
  return sessionStorage.getItem(KEY_STORE) ?? ""
}

export const setKey = (key) => {
  if (key) sessionStorage.setItem(KEY_STORE, key)
  else sessionStorage.removeItem(KEY_STORE)
}

/** Wires a key form: the field shows whether a key is set; saving keeps it for this tab. */
export const keyForm = (form, onChange) => {
  const input = form.querySelector("input")
  input.value = takeKey()
  form.addEventListener("submit", (event) => {
    event.preventDefault()
    setKey(input.value.trim())
    onChange()
  })
}

/** A call to the API with the key: resolves { status, body, response } (body parsed when JSON). */
export const api = async (path, { method = "GET", body, contentType } = {}) => {
  const headers = { "X-API-Key": takeKey() }
  let payload = body
  if (body !== undefined && contentType === undefined && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json"
    payload = JSON.stringify(body)
  } else if (contentType !== undefined) headers["Content-Type"] = contentType
  const response = await fetch(path, { method, headers, body: payload })
  const type = response.headers.get("content-type") ?? ""
  const parsed = type.includes("json") ? await response.json() : undefined
  return { status: response.status, body: parsed, response }
}

/** The message of an error answer, as the API words it. */
export const messageOf = (answer) => {
  if (answer.status === 401) return "The API key is missing or unknown: enter a key above."
  if (answer.status === 403) return `The key may not do this: ${answer.body?.message ?? "forbidden"}`
  return answer.body?.message ?? `the service answered ${answer.status}`
}

/** Shows a message in a status region (role="status" or "alert" in the page). */
export const say = (region, text, tone = "") => {
  region.textContent = text
  region.className = `status ${tone}`.trim()
}

/** Creates an element with attributes and children. */
export const el = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name === "text") node.textContent = value
    else node.setAttribute(name, value === true ? "" : String(value))
  }
  node.append(...children)
  return node
}

/** Fills a select with options, keeping the choice when it is still there. */
export const fillSelect = (select, options, chosen) => {
  const keep = chosen ?? select.value
  select.replaceChildren(...options.map(([value, text]) => el("option", { value, text })))
  if (options.some(([value]) => value === keep)) select.value = keep
}
