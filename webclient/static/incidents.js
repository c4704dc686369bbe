// "Report damage": the outages that affected the signed-in user (GET
// /_planb/client/v1/incidents) — what happened, when, how long it affected
// them, what the published compensation rule pays — the damage reports they
// filed, and a form to file one more.
//
// A report is sent with PUT .../incidents/{id}/reports/{txnId}. The txnId
// is made once per report and kept until the server has acknowledged it:
// failover retries inside api.js and the user's own retry after an error
// send the same txnId, and the server answers a repeated txnId with the
// report filed the first time, so a report is never filed twice.
//
// Everything the user or the server wrote is put in the page as text.
import { fmtDateTime, fmtDuration, lang, t } from './i18n.js';
import { describeError, h, randomId, reconcile, sleep } from './util.js';

/** Bounds of a report, as the server enforces them (package incident). */
export const MAX_REPORT_TEXT = 4000;
export const MAX_AMOUNT = 1_000_000_000_000;
/** The report categories, in the order the form offers them. */
export const CATEGORIES = ['messages', 'business', 'payment', 'other'];
const CATEGORY_KEY = { messages: 'catMessages', business: 'catBusiness', payment: 'catPayment', other: 'catOther' };
const STATUS_KEY = { received: 'statusReceived', reviewed: 'statusReviewed', paid: 'statusPaid' };

/** How often the list is read again: while the view is open, and otherwise (for the banner). */
const REFRESH_SHOWN_MS = 30000;
const REFRESH_HIDDEN_MS = 300000;

/** Currencies without a minor unit, and with three digits of it (ISO 4217, as package compensation). */
const ZERO_DIGITS = new Set(['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF']);
const THREE_DIGITS = new Set(['BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND']);

/**
 * formatAmount formats an amount in the currency's minor unit like the
 * server's notices: "5,000원" in Korean, "KRW 5,000" otherwise.
 */
export function formatAmount(amount, currency = 'KRW', lng = lang) {
  const digits = ZERO_DIGITS.has(currency) ? 0 : THREE_DIGITS.has(currency) ? 3 : 2;
  const neg = amount < 0;
  let s = String(Math.abs(Math.trunc(Number(amount) || 0)));
  let frac = '';
  if (digits > 0) {
    s = s.padStart(digits + 1, '0');
    frac = '.' + s.slice(-digits);
    s = s.slice(0, -digits);
  }
  const grouped = s.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + frac;
  const sign = neg ? '-' : '';
  return currency === 'KRW' && lng === 'ko' ? `${sign}${grouped}원` : `${currency} ${sign}${grouped}`;
}

/** incidentTitle says what happened, in the UI language. */
export function incidentTitle(inc) {
  switch (inc.kind) {
    case 'datacenter_lost':
      return t('kindDatacenterLost', { dc: (inc.datacenters || []).join(', ') });
    case 'partition_stalled':
      return t('kindPartitionStalled');
  }
  return t('kindOther');
}

/**
 * affectedMs is how long the intervals ({from, to?}; no to: still going)
 * cover up to now, overlapping ones counted once.
 */
export function affectedMs(intervals, now = Date.now()) {
  const spans = (intervals || []).map((iv) => [Date.parse(iv.from), iv.to ? Date.parse(iv.to) : now])
    .filter(([a, b]) => !Number.isNaN(a) && !Number.isNaN(b)).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of spans) {
    const from = Math.max(a, end);
    if (b > from) total += b - from;
    end = Math.max(end, b);
  }
  return total;
}

/** charCount counts characters as the server does (code points, not UTF-16 units). */
export function charCount(s) {
  return [...s].length;
}

/**
 * validateReport checks the form's values before anything is sent. It
 * returns {error, field} for the first problem, or {body} to send.
 */
export function validateReport({ category, text, amount }) {
  if (!CATEGORIES.includes(category)) return { error: t('errChooseCategory'), field: 'category' };
  const body = String(text || '').trim();
  if (category === 'other' && !body) return { error: t('errTextRequired'), field: 'text' };
  const n = charCount(body);
  if (n > MAX_REPORT_TEXT) return { error: t('errTextTooLong', { n, max: MAX_REPORT_TEXT }), field: 'text' };
  let claimed = null;
  const a = String(amount || '').replace(/[\s,]/g, '').replace(/원$/, '');
  if (a !== '') {
    if (!/^\d+$/.test(a)) return { error: t('errAmount'), field: 'amount' };
    claimed = Number(a);
    if (!Number.isSafeInteger(claimed) || claimed > MAX_AMOUNT) return { error: t('errAmountTooLarge'), field: 'amount' };
  }
  return { body: { category, text: body, amount_claimed: claimed } };
}

/** reportError turns a failed PUT into words. */
export function reportError(err) {
  if (!err) return '';
  if (err.name === 'UnreachableError') return t('errReportNetwork');
  switch (err.errcode) {
    case 'M_FORBIDDEN':
      return t('errReportForbidden');
    case 'M_LIMIT_EXCEEDED':
      // The general rate limit says when to come back; the per-incident one does not.
      return err.retryAfterMs ? describeError(err) : t('errReportLimit');
    case 'M_TOO_LARGE':
      return t('errReportTooLarge');
    case 'M_NOT_FOUND':
      return t('errIncidentGone');
    case 'M_UNAVAILABLE':
      return t('errReportNetwork');
  }
  return describeError(err);
}

/** IncidentPane is the "Report damage" view. chat is the controller (chat.js). */
export class IncidentPane {
  constructor(chat) {
    this.chat = chat;
    /** data is the last answer of GET /incidents, or null before the first. */
    this.data = null;
    this.loadError = null;
    this.loading = null; // the refresh under way
    this.shown = false;
    this.wake = null;
    /** txns: incident id -> the txnId of the report being sent or to retry. */
    this.txns = new Map();
    this.build();
  }

  /** build makes the view's elements (again: rebuild). */
  build() {
    const chat = this.chat;
    const back = h('button', { type: 'button', id: 'incidents-back', class: 'icon back', 'aria-label': t('back'), text: '‹' });
    back.addEventListener('click', () => chat.openRoom(null));
    this.title = h('h2', { id: 'incidents-title', tabindex: '-1', text: t('reportDamage') });
    this.state = h('p', { id: 'incidents-state', class: 'muted', role: 'status' });
    this.retryBtn = h('button', { type: 'button', id: 'incidents-retry', class: 'small', hidden: true, text: t('tryAgain') });
    this.retryBtn.addEventListener('click', () => this.refresh());
    this.empty = h('p', { id: 'no-incidents', class: 'empty muted', hidden: true, text: t('noIncidents') });
    this.list = h('div', { id: 'incident-list', class: 'incident-list' });
    this.el = h('section', { id: 'incident-pane', class: 'incident-pane', 'aria-labelledby': 'incidents-title', hidden: true },
      h('header', { class: 'incidents-head' }, back, this.title),
      h('div', { class: 'incidents-body' },
        h('p', { class: 'incidents-intro muted', text: t('incidentsIntro') }),
        h('div', { class: 'incidents-state' }, this.state, this.retryBtn),
        this.empty, this.list));
  }

  /**
   * rebuild makes the view again in the UI language, with what it showed
   * (a report being written is lost; the list is read again when shown).
   */
  rebuild() {
    this.build();
    this.el.hidden = !this.shown;
    this.render();
  }

  /** incidents are the user's incidents as last read. */
  get incidents() {
    return (this.data && this.data.incidents) || [];
  }

  get currency() {
    const r = this.data && this.data.compensation_policy && this.data.compensation_policy.rule;
    return (r && r.currency) || 'KRW';
  }

  /** run reads the list again now and then until signal aborts. */
  async run(signal) {
    while (!signal.aborted) {
      const wait = new Promise((resolve) => {
        this.wake = resolve;
      });
      await Promise.race([wait, sleep(this.shown ? REFRESH_SHOWN_MS : REFRESH_HIDDEN_MS, signal)]).catch(() => {});
      if (signal.aborted) return;
      await this.refresh();
    }
  }

  /** kick asks run for a refresh now (a server notice came in). */
  kick() {
    if (this.wake) this.wake();
  }

  /** refresh reads the user's incidents; concurrent calls share one request. */
  refresh() {
    if (!this.loading) {
      this.loading = this.load().finally(() => {
        this.loading = null;
      });
      this.render();
    }
    return this.loading;
  }

  async load() {
    try {
      const res = await this.chat.api.incidents();
      this.data = { incidents: Array.isArray(res.incidents) ? res.incidents : [], compensation_policy: res.compensation_policy || {} };
      this.loadError = null;
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (e && e.errcode === 'M_UNRECOGNIZED') {
        this.data = { incidents: [], compensation_policy: {} }; // a server without incidents
        this.loadError = null;
      } else {
        this.loadError = e;
      }
    }
    this.render();
    this.chat.onIncidents(this.incidents);
  }

  /** show makes the view visible (or not); opening it reads the list again. */
  show(visible) {
    const opened = visible && !this.shown;
    this.shown = visible;
    this.el.hidden = !visible;
    if (opened) {
      this.render();
      this.refresh();
    }
  }

  render() {
    if (this.loading && !this.data) this.state.textContent = t('incidentsLoading');
    else if (this.loadError) this.state.textContent = t('incidentsError', { msg: describeError(this.loadError) });
    else this.state.textContent = '';
    this.retryBtn.hidden = !this.loadError || !!this.loading;
    this.empty.hidden = !this.data || this.incidents.length > 0;
    reconcile(this.list, this.incidents.map((mi) => ({
      key: mi.incident.id,
      create: () => this.card(mi.incident.id),
      update: (el) => this.updateCard(el, mi),
    })));
  }

  /** card builds the parts of one incident that stay while it is shown (the form keeps what is typed). */
  card(id) {
    const p = (cls, attrs = {}) => h('p', { class: cls, ...attrs });
    const fid = (name) => `report-${name}-${id}`;
    const el = h('article', { class: 'incident', dataset: { incidentId: id }, 'aria-labelledby': fid('title') },
      h('header', { class: 'incident-head' },
        h('h3', { class: 'incident-title', id: fid('title') }),
        h('span', { class: 'pill incident-state' }),
        h('span', { class: 'pill drill', hidden: true, text: t('drill') })),
      h('dl', { class: 'incident-facts' },
        h('dt', { text: t('lblWhen') }), h('dd', { class: 'incident-when' }),
        h('dt', { text: t('lblAffected') }), h('dd', { class: 'incident-affected' }),
        h('dt', { text: t('lblCompensation') }),
        h('dd', {}, h('span', { class: 'compensation-amount' }), p('compensation-note muted'), p('compensation-explanation muted'))),
      h('details', { class: 'rule' }, h('summary', { class: 'rule-link', text: t('showRule') }), h('pre', { class: 'rule-text' })),
      h('section', { class: 'reports' },
        h('h4', { text: t('yourReports') }),
        h('ul', { class: 'report-list' }),
        p('no-reports muted', { text: t('noReports') })));
    el.append(this.form(id, fid));
    return el;
  }

  form(id, fid) {
    const category = h('select', { id: fid('category'), name: 'category', class: 'report-category' },
      h('option', { value: '', text: t('chooseCategory') }),
      CATEGORIES.map((c) => h('option', { value: c, text: t(CATEGORY_KEY[c]) })));
    const hint = h('small', { id: fid('hint'), class: 'muted text-hint', text: t('textOptionalHint') });
    const counter = h('small', { id: fid('counter'), class: 'counter muted' });
    const text = h('textarea', { id: fid('text'), name: 'text', class: 'report-text-input', rows: '4', 'aria-describedby': `${fid('hint')} ${fid('counter')}` });
    const amount = h('input', { id: fid('amount'), name: 'amount', class: 'report-amount', inputmode: 'numeric', autocomplete: 'off', placeholder: '30000' });
    const amountLabel = h('label', { for: fid('amount'), class: 'amount-label' });
    const err = h('p', { class: 'error report-error', role: 'alert' });
    const ok = h('p', { class: 'ok report-ok', role: 'status' });
    const submit = h('button', { type: 'submit', class: 'primary report-submit', text: t('submitReport') });
    const form = h('form', { class: 'report-form', novalidate: true, 'aria-labelledby': fid('form-title') },
      h('h4', { id: fid('form-title'), text: t('reportFormTitle') }),
      h('div', { class: 'field' }, h('label', { for: fid('category'), text: t('category') }), category),
      h('div', { class: 'field' }, h('label', { for: fid('text'), text: t('reportText') }), text,
        h('div', { class: 'field-foot' }, hint, counter)),
      h('div', { class: 'field' }, amountLabel, amount),
      err, ok, h('div', { class: 'actions' }, submit));
    const count = () => {
      const n = charCount(text.value.trim());
      counter.textContent = t('charCount', { n, max: MAX_REPORT_TEXT });
      counter.classList.toggle('over', n > MAX_REPORT_TEXT);
    };
    count();
    category.addEventListener('change', () => {
      hint.textContent = category.value === 'other' ? t('textRequiredHint') : t('textOptionalHint');
      category.removeAttribute('aria-invalid');
    });
    text.addEventListener('input', () => {
      count();
      text.removeAttribute('aria-invalid');
    });
    amount.addEventListener('input', () => amount.removeAttribute('aria-invalid'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit(id, { form, category, text, amount, err, ok, submit, count });
    });
    return form;
  }

  updateCard(el, mi) {
    const inc = mi.incident;
    const aff = mi.affected || {};
    const comp = mi.compensation || {};
    const open = !inc.ended_at;
    el.dataset.state = open ? 'ongoing' : 'ended';
    el.querySelector('.incident-title').textContent = incidentTitle(inc);
    const st = el.querySelector('.incident-state');
    st.textContent = open ? t('ongoing') : t('ended');
    st.dataset.state = open ? 'ongoing' : 'ended';
    el.querySelector('.drill').hidden = !inc.drill;
    el.querySelector('.incident-when').textContent = t('startedAt', { time: fmtDateTime(inc.started_at) }) + ' · ' +
      (open ? t('stillOngoing') : t('endedAt', { time: fmtDateTime(inc.ended_at) }));
    const d = fmtDuration(affectedMs(aff.intervals));
    const stillAffected = (aff.intervals || []).some((iv) => !iv.to);
    el.querySelector('.incident-affected').textContent = stillAffected ? t('soFar', { d }) : d;

    const amount = el.querySelector('.compensation-amount');
    const due = Number(comp.amount) || 0;
    amount.textContent = due > 0 ? formatAmount(due, comp.currency || this.currency) : t('belowThreshold');
    amount.dataset.amount = String(due);
    const note = el.querySelector('.compensation-note');
    note.textContent = inc.drill || comp.drill ? t('compensationDrill') : comp.open ? t('compensationOpen') : '';
    note.hidden = !note.textContent;
    el.querySelector('.compensation-explanation').textContent = (lang === 'ko' && comp.explanation_ko) || comp.explanation || '';
    const desc = (this.data.compensation_policy && this.data.compensation_policy.description) || {};
    el.querySelector('.rule-text').textContent = desc[lang] || desc.en || '';

    const reports = mi.reports || [];
    el.querySelector('.no-reports').hidden = reports.length > 0;
    reconcile(el.querySelector('.report-list'), reports.map((r) => ({
      key: r.id,
      create: () => h('li', { class: 'report', dataset: { reportId: r.id } },
        h('div', { class: 'report-head' }, h('span', { class: 'report-cat' }), h('span', { class: 'pill report-status' }), h('time', { class: 'report-time muted' })),
        h('p', { class: 'report-amount' }), h('p', { class: 'report-text' })),
      update: (li) => {
        li.dataset.status = r.status;
        li.querySelector('.report-cat').textContent = t(CATEGORY_KEY[r.category] || 'catOther');
        const s = li.querySelector('.report-status');
        s.textContent = t(STATUS_KEY[r.status] || 'statusReceived');
        s.dataset.status = r.status;
        const time = li.querySelector('.report-time');
        time.textContent = fmtDateTime(r.created_at);
        time.dateTime = r.created_at;
        const a = li.querySelector('.report-amount');
        a.hidden = r.amount_claimed == null;
        a.textContent = r.amount_claimed == null ? '' : t('claimed', { amount: formatAmount(r.amount_claimed, this.currency) });
        const body = li.querySelector('.report-text');
        body.hidden = !r.text;
        body.textContent = r.text || '';
      },
    })));
    el.querySelector('.amount-label').textContent = t('amountLabel', { unit: this.currency === 'KRW' ? t('amountUnitKRW') : this.currency });
  }

  async submit(id, f) {
    if (f.submit.disabled) return;
    f.err.textContent = '';
    f.ok.textContent = '';
    const v = validateReport({ category: f.category.value, text: f.text.value, amount: f.amount.value });
    if (v.error) {
      f.err.textContent = v.error;
      const field = f[v.field];
      field.setAttribute('aria-invalid', 'true');
      field.focus();
      return;
    }
    let txn = this.txns.get(id);
    if (!txn) {
      txn = 'pbr' + Date.now().toString(36) + randomId(12);
      this.txns.set(id, txn);
    }
    f.form.dataset.txn = txn;
    f.submit.disabled = true;
    f.submit.textContent = t('sendingReport');
    f.form.setAttribute('aria-busy', 'true');
    try {
      const res = await this.chat.api.fileReport(id, txn, v.body);
      this.txns.delete(id);
      delete f.form.dataset.txn;
      f.form.reset();
      f.count();
      f.category.dispatchEvent(new Event('change'));
      f.ok.textContent = t('reportReceived');
      const mi = this.incidents.find((x) => x.incident.id === id);
      if (mi && res && res.report) {
        mi.reports = (mi.reports || []).filter((r) => r.id !== res.report.id).concat([res.report]);
        this.render();
      }
      this.refresh();
    } catch (e) {
      f.err.textContent = reportError(e);
    } finally {
      f.submit.disabled = false;
      f.submit.textContent = t('submitReport');
      f.form.removeAttribute('aria-busy');
    }
  }
}
