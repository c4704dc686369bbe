// UI text in Korean and English. The language is the one the user chose
// with the switch in the top bar (kept on this device and in their account
// data, see chat.js), else the browser's (navigator.languages); ?lang=ko or
// ?lang=en overrides both for testing. setLang changes it while the page
// runs: the views are built again with the new texts.
import { loadLanguageChoice } from './store.js';

const en = {
  appName: 'planb',
  skipToComposer: 'Skip to message box',
  // auth
  login: 'Log in',
  signup: 'Sign up',
  logout: 'Log out',
  haveAccount: 'Already have an account? Log in',
  needAccount: 'New here? Create an account',
  username: 'User name',
  usernameHint: 'Letters a–z, digits and . _ = - / +',
  password: 'Password',
  passwordAgain: 'Password again',
  passwordsDiffer: 'The two passwords are not the same.',
  passwordRule: 'At least {n} characters.',
  passwordTooShort: 'The password is too short: use at least {n} characters.',
  fillBoth: 'Enter a user name and a password.',
  server: 'Server',
  advanced: 'Server settings',
  loggingIn: 'Logging in…',
  signingUp: 'Creating your account…',
  tagline: 'The messenger that keeps talking when a data center burns.',
  // errors
  errWrongPassword: 'Wrong user name or password.',
  errUserTaken: 'That user name is already taken. Choose another one.',
  errBadUsername: 'User names may contain only a–z, 0–9 and . _ = - / +',
  errRateLimited: 'Too many attempts. Try again in {s} seconds.',
  errRateLimitedShort: 'Too many requests. Wait a moment and try again.',
  errUnreachable: 'Cannot reach the server: no data center answers. Check your connection and try again.',
  errUnavailable: 'The service cannot accept this right now (a data center is switching over). Try again in a few seconds.',
  errRegistrationDisabled: 'Sign-up is closed on this server. Ask its operator for an account.',
  errSessionExpired: 'Your session has ended. Please log in again.',
  errNoSuchUser: 'There is no user {user}.',
  errForbidden: 'Not allowed: {msg}',
  errTooLarge: 'The file is too large for this server.',
  errMessageTooLong: 'Message too long (at most about 60,000 bytes).',
  errWeakPassword: 'The server does not accept this password: {msg}',
  errGeneric: '{msg} ({code})',
  errOutcomeUnknown: 'The connection broke before the server answered. Check the chat list before trying again.',
  errNotImage: 'Only images can be sent.',
  // status
  onDC: 'Connected to data center {dc}',
  dcBadgeTitle: 'Data center in use',
  switching: 'Switching data center…',
  switchingFromTo: 'Switching data center… ({from} → {to})',
  offline: 'No data center answers. Your messages will be sent as soon as one does.',
  switched: 'Now on data center {dc}.',
  connecting: 'Connecting…',
  sendingCount: 'Sending {n} message(s)…',
  syncError: 'Trouble receiving messages: {msg}',
  // list
  chats: 'Chats',
  newChat: 'New chat',
  newGroup: 'New group',
  noChats: 'No chats yet. Start one with “New chat”.',
  invitedBy: '{user} invited you',
  accept: 'Accept',
  decline: 'Decline',
  unreadBadge: '{n} unread',
  photo: 'Photo',
  emptyChat: 'Empty chat',
  // dialogs
  newChatTitle: 'Start a 1:1 chat',
  newChatUser: 'User ID (for example @bob:{server} or bob)',
  start: 'Start chat',
  newGroupTitle: 'Create a group chat',
  groupName: 'Group name',
  groupMembers: 'Members to invite (user IDs, separated by commas or spaces)',
  create: 'Create',
  cancel: 'Cancel',
  close: 'Close',
  inviteTitle: 'Invite to this chat',
  inviteUser: 'User ID',
  invite: 'Invite',
  invited: 'Invited {user}.',
  leave: 'Leave',
  leaveConfirm: 'Leave “{name}”? You will no longer receive its messages.',
  logoutConfirmPending: '{n} message(s) are not sent yet and will be lost. Log out anyway?',
  // room
  back: 'Back to chats',
  members: '{n} members',
  chooseChat: 'Choose a chat on the left, or start a new one.',
  message: 'Message',
  send: 'Send',
  attachImage: 'Send an image',
  loadingOlder: 'Loading older messages…',
  beginning: 'This is the beginning of the chat.',
  typingOne: '{a} is typing…',
  typingTwo: '{a} and {b} are typing…',
  typingMany: 'Several people are typing…',
  unreadBy: 'Not read by {n}',
  unreadByLabel: '{n} member(s) have not read this yet',
  pending: 'Sending…',
  waiting: 'Waiting for a data center…',
  failed: 'Not sent: {msg}',
  retry: 'Retry',
  discard: 'Delete',
  messageActions: 'Message actions',
  deleteMessage: 'Delete',
  editMessage: 'Edit',
  editingMessage: 'Editing message',
  edited: '(edited)',
  react: 'React',
  reactWith: 'React with {key}',
  reactionLabel: '{key} {n}: {names}',
  deleteConfirm: 'Delete this message for everyone in the chat?',
  reply: 'Reply',
  replyingTo: 'Replying to {user}',
  replyingToMe: 'Replying to yourself',
  cancelReply: 'Cancel reply',
  replyTo: 'In reply to {user}',
  replyToMe: 'In reply to you',
  originalNotLoaded: 'Original message not loaded',
  jumpToOriginal: 'Show the original message',
  uploading: 'Uploading…',
  imageLost: 'The image was lost when the page was reloaded.',
  openImage: 'Open image {name}',
  you: 'You',
  joined: '{user} joined',
  joinedMe: 'You joined',
  left: '{user} left',
  leftMe: 'You left',
  invitedUser: '{user} invited {target}',
  invitedUserMe: 'You invited {target}',
  invitedMe: '{user} invited you',
  kicked: '{user} removed {target}',
  kickedMe: 'You removed {target}',
  kickedYou: '{user} removed you',
  created: '{user} created the chat',
  createdMe: 'You created the chat',
  renamed: '{user} named the chat “{name}”',
  renamedMe: 'You named the chat “{name}”',
  deleted: 'Message deleted',
  unsupported: 'Unsupported message',
  newMessageFrom: 'New message from {user}: {body}',
  today: 'Today',
  yesterday: 'Yesterday',
  // damage reports (incidents.js)
  reportDamage: 'Report damage',
  incidentsBannerOne: 'An outage affected your account',
  incidentsBannerMany: '{n} outages affected your account',
  incidentsIntro: 'Outages of the last 90 days that affected your account, what the published rule pays you, and the damage you reported.',
  noIncidents: 'No outage has affected your account in the last 90 days.',
  incidentsLoading: 'Loading…',
  incidentsError: 'Could not load the outages: {msg}',
  tryAgain: 'Try again',
  kindDatacenterLost: 'Outage of data center {dc}',
  kindPartitionStalled: 'Writes stopped for some rooms',
  kindOther: 'Outage',
  ongoing: 'Ongoing',
  ended: 'Ended',
  drill: 'Drill',
  lblWhen: 'When',
  lblAffected: 'Affected you',
  lblCompensation: 'Compensation',
  startedAt: 'Started {time}',
  endedAt: 'ended {time}',
  stillOngoing: 'not over yet',
  soFar: '{d} so far',
  belowThreshold: 'Below the compensation threshold',
  compensationOpen: 'The outage is not over, so the amount may still grow.',
  compensationDrill: 'This was a drill, an outage caused on purpose; drills are not compensated.',
  showRule: 'Show the compensation rule',
  yourReports: 'Your reports',
  noReports: 'You have not reported damage for this outage.',
  claimed: 'Claimed: {amount}',
  catMessages: 'Messages lost or late',
  catBusiness: 'Business loss',
  catPayment: 'Payment problem',
  catOther: 'Other',
  statusReceived: 'Received',
  statusReviewed: 'Reviewed',
  statusPaid: 'Paid',
  reportFormTitle: 'Report damage from this outage',
  category: 'Kind of damage',
  chooseCategory: 'Choose…',
  reportText: 'What happened',
  textRequiredHint: 'Required for “Other”.',
  textOptionalHint: 'Optional, but it helps us review your report.',
  charCount: '{n} / {max}',
  amountLabel: 'Amount claimed ({unit}, optional)',
  amountUnitKRW: 'won',
  submitReport: 'Submit report',
  sendingReport: 'Sending…',
  reportReceived: 'Report received',
  errChooseCategory: 'Choose the kind of damage.',
  errTextRequired: 'For “Other”, describe what happened.',
  errTextTooLong: 'The description is {n} characters long; at most {max} are allowed.',
  errAmount: 'Enter the amount as a whole number, 0 or more (for example 30000).',
  errAmountTooLarge: 'The amount is too large.',
  errReportForbidden: 'This outage did not affect your account, so you cannot report damage for it.',
  errReportLimit: 'You can file at most 10 reports per outage.',
  errReportTooLarge: 'The report is too large: the description can have at most 4000 characters.',
  errReportNetwork: 'The report was not sent: no data center answers. Try again; it will not be filed twice.',
  errIncidentGone: 'This outage is no longer listed.',
  // search (search.js)
  searchAll: 'Search messages',
  searchRoom: 'Search this chat',
  searchGo: 'Search',
  searchOpen: 'Search in this chat',
  searchClose: 'Close search',
  searchClear: 'Clear search',
  searching: 'Searching…',
  searchCountOne: '1 message',
  searchCount: '{n} messages',
  searchNone: 'No messages match “{term}”.',
  searchError: 'Search failed: {msg}',
  searchTooBroad: 'Too many messages contain these words. Add another word or search in one chat.',
  searchMore: 'More results',
  searchResultLabel: '{room}, {sender}, {time}: {body}',
  searchNotShown: 'That message could not be shown: it is further back than the history loaded here.',
  // language switch
  language: 'Language',
  switchLanguage: 'Language: English. Switch to Korean',
  // server notices
  serverNotices: 'Server notices',
  noticesReadOnly: 'Notices from the service. You cannot reply in this room.',
  cannotSend: 'You cannot send messages in this room.',
};

const ko = {
  appName: 'planb',
  skipToComposer: '메시지 입력창으로 건너뛰기',
  login: '로그인',
  signup: '가입하기',
  logout: '로그아웃',
  haveAccount: '이미 계정이 있나요? 로그인',
  needAccount: '처음이신가요? 계정 만들기',
  username: '사용자 이름',
  usernameHint: '영문 소문자(a–z), 숫자, . _ = - / + 를 쓸 수 있습니다',
  password: '비밀번호',
  passwordAgain: '비밀번호 확인',
  passwordsDiffer: '두 비밀번호가 서로 다릅니다.',
  passwordRule: '{n}자 이상 입력하세요.',
  passwordTooShort: '비밀번호가 너무 짧습니다. {n}자 이상으로 정해 주세요.',
  fillBoth: '사용자 이름과 비밀번호를 입력하세요.',
  server: '서버',
  advanced: '서버 설정',
  loggingIn: '로그인 중…',
  signingUp: '계정을 만드는 중…',
  tagline: '데이터센터에 불이 나도 대화는 계속됩니다.',
  errWrongPassword: '사용자 이름이나 비밀번호가 맞지 않습니다.',
  errUserTaken: '이미 사용 중인 사용자 이름입니다. 다른 이름을 골라 주세요.',
  errBadUsername: '사용자 이름에는 a–z, 0–9, . _ = - / + 만 쓸 수 있습니다.',
  errRateLimited: '시도가 너무 많습니다. {s}초 후에 다시 시도하세요.',
  errRateLimitedShort: '요청이 너무 많습니다. 잠시 후 다시 시도하세요.',
  errUnreachable: '서버에 연결할 수 없습니다. 응답하는 데이터센터가 없습니다. 연결을 확인하고 다시 시도하세요.',
  errUnavailable: '지금은 처리할 수 없습니다(데이터센터 전환 중). 몇 초 후에 다시 시도하세요.',
  errRegistrationDisabled: '이 서버는 가입을 받지 않습니다. 운영자에게 계정을 요청하세요.',
  errSessionExpired: '로그인이 만료되었습니다. 다시 로그인해 주세요.',
  errNoSuchUser: '{user} 사용자를 찾을 수 없습니다.',
  errForbidden: '허용되지 않는 요청입니다: {msg}',
  errTooLarge: '파일이 너무 커서 이 서버에 올릴 수 없습니다.',
  errMessageTooLong: '메시지가 너무 깁니다 (최대 약 6만 바이트)',
  errWeakPassword: '서버가 이 비밀번호를 받지 않습니다: {msg}',
  errGeneric: '{msg} ({code})',
  errOutcomeUnknown: '서버가 응답하기 전에 연결이 끊겼습니다. 다시 시도하기 전에 채팅 목록을 확인하세요.',
  errNotImage: '이미지만 보낼 수 있습니다.',
  onDC: '{dc} 데이터센터에 연결됨',
  dcBadgeTitle: '사용 중인 데이터센터',
  switching: '데이터센터 전환 중…',
  switchingFromTo: '데이터센터 전환 중… ({from} → {to})',
  offline: '응답하는 데이터센터가 없습니다. 연결되는 즉시 메시지를 보냅니다.',
  switched: '{dc} 데이터센터로 전환했습니다.',
  connecting: '연결 중…',
  sendingCount: '메시지 {n}개 보내는 중…',
  syncError: '메시지를 받는 중 문제가 생겼습니다: {msg}',
  chats: '채팅',
  newChat: '새 채팅',
  newGroup: '새 그룹',
  noChats: '아직 채팅이 없습니다. “새 채팅”으로 시작하세요.',
  invitedBy: '{user}님이 초대했습니다',
  accept: '수락',
  decline: '거절',
  unreadBadge: '읽지 않은 메시지 {n}개',
  photo: '사진',
  emptyChat: '빈 채팅방',
  newChatTitle: '1:1 채팅 시작',
  newChatUser: '사용자 ID (예: @bob:{server} 또는 bob)',
  start: '채팅 시작',
  newGroupTitle: '그룹 채팅 만들기',
  groupName: '그룹 이름',
  groupMembers: '초대할 사람 (사용자 ID, 쉼표나 공백으로 구분)',
  create: '만들기',
  cancel: '취소',
  close: '닫기',
  inviteTitle: '이 채팅방에 초대',
  inviteUser: '사용자 ID',
  invite: '초대',
  invited: '{user}님을 초대했습니다.',
  leave: '나가기',
  leaveConfirm: '“{name}” 채팅방에서 나갈까요? 더 이상 메시지를 받지 않습니다.',
  logoutConfirmPending: '아직 보내지 못한 메시지 {n}개가 사라집니다. 그래도 로그아웃할까요?',
  back: '채팅 목록으로',
  members: '{n}명',
  chooseChat: '왼쪽에서 채팅을 고르거나 새 채팅을 시작하세요.',
  message: '메시지',
  send: '전송',
  attachImage: '이미지 보내기',
  loadingOlder: '이전 메시지를 불러오는 중…',
  beginning: '대화의 시작입니다.',
  typingOne: '{a}님이 입력 중…',
  typingTwo: '{a}님과 {b}님이 입력 중…',
  typingMany: '여러 명이 입력 중…',
  unreadBy: '{n}명 안 읽음',
  unreadByLabel: '{n}명이 아직 읽지 않았습니다',
  pending: '보내는 중…',
  waiting: '데이터센터를 기다리는 중…',
  failed: '전송 실패: {msg}',
  retry: '다시 보내기',
  discard: '삭제',
  messageActions: '메시지 메뉴',
  deleteMessage: '삭제',
  editMessage: '수정',
  editingMessage: '메시지 수정 중',
  edited: '(수정됨)',
  react: '공감',
  reactWith: '{key} 공감하기',
  reactionLabel: '{key} {n}명: {names}',
  deleteConfirm: '이 메시지를 삭제할까요? 대화방의 모든 사람에게서 삭제됩니다.',
  reply: '답장',
  replyingTo: '{user}님에게 답장',
  replyingToMe: '내 메시지에 답장',
  cancelReply: '답장 취소',
  replyTo: '{user}님에게 보낸 답장',
  replyToMe: '나에게 보낸 답장',
  originalNotLoaded: '원래 메시지를 불러오지 않았습니다',
  jumpToOriginal: '원래 메시지 보기',
  uploading: '올리는 중…',
  imageLost: '페이지를 새로 고치는 바람에 이미지를 보내지 못했습니다.',
  openImage: '이미지 {name} 열기',
  you: '나',
  joined: '{user}님이 들어왔습니다',
  joinedMe: '내가 들어왔습니다',
  left: '{user}님이 나갔습니다',
  leftMe: '내가 나갔습니다',
  invitedUser: '{user}님이 {target}님을 초대했습니다',
  invitedUserMe: '내가 {target}님을 초대했습니다',
  invitedMe: '{user}님이 나를 초대했습니다',
  kicked: '{user}님이 {target}님을 내보냈습니다',
  kickedMe: '내가 {target}님을 내보냈습니다',
  kickedYou: '{user}님이 나를 내보냈습니다',
  created: '{user}님이 채팅방을 만들었습니다',
  createdMe: '내가 채팅방을 만들었습니다',
  renamed: '{user}님이 채팅방 이름을 바꿨습니다: “{name}”',
  renamedMe: '내가 채팅방 이름을 바꿨습니다: “{name}”',
  deleted: '삭제된 메시지입니다',
  unsupported: '지원하지 않는 메시지입니다',
  newMessageFrom: '{user}님의 새 메시지: {body}',
  today: '오늘',
  yesterday: '어제',
  reportDamage: '장애 피해 신고',
  incidentsBannerOne: '장애 1건이 내 계정에 영향을 주었습니다',
  incidentsBannerMany: '장애 {n}건이 내 계정에 영향을 주었습니다',
  incidentsIntro: '최근 90일 동안 내 계정에 영향을 준 장애와 공개된 보상 기준에 따른 보상액, 내가 신고한 피해입니다.',
  noIncidents: '최근 90일 동안 내 계정에 영향을 준 장애가 없습니다.',
  incidentsLoading: '불러오는 중…',
  incidentsError: '장애 목록을 불러오지 못했습니다: {msg}',
  tryAgain: '다시 시도',
  kindDatacenterLost: '데이터센터 {dc} 장애',
  kindPartitionStalled: '메시지 저장 일부 중단',
  kindOther: '장애',
  ongoing: '진행 중',
  ended: '종료',
  drill: '훈련',
  lblWhen: '발생 시각',
  lblAffected: '영향받은 시간',
  lblCompensation: '보상액',
  startedAt: '{time} 시작',
  endedAt: '{time} 종료',
  stillOngoing: '아직 끝나지 않음',
  soFar: '지금까지 {d}',
  belowThreshold: '보상 기준 미달',
  compensationOpen: '장애가 아직 끝나지 않아 보상액이 늘어날 수 있습니다.',
  compensationDrill: '일부러 일으킨 복구 훈련이라 보상 대상이 아닙니다.',
  showRule: '보상 기준 보기',
  yourReports: '내 신고',
  noReports: '아직 이 장애로 신고한 피해가 없습니다.',
  claimed: '청구 금액: {amount}',
  catMessages: '메시지 유실·지연',
  catBusiness: '영업 손실',
  catPayment: '결제 문제',
  catOther: '기타',
  statusReceived: '접수됨',
  statusReviewed: '검토됨',
  statusPaid: '지급됨',
  reportFormTitle: '이 장애로 입은 피해 신고',
  category: '피해 종류',
  chooseCategory: '선택하세요',
  reportText: '내용',
  textRequiredHint: '‘기타’를 고르면 꼭 적어 주세요.',
  textOptionalHint: '적지 않아도 되지만, 적어 주시면 검토에 도움이 됩니다.',
  charCount: '{n} / {max}자',
  amountLabel: '청구 금액 ({unit}, 선택)',
  amountUnitKRW: '원',
  submitReport: '신고하기',
  sendingReport: '보내는 중…',
  reportReceived: '신고가 접수되었습니다',
  errChooseCategory: '피해 종류를 골라 주세요.',
  errTextRequired: '‘기타’를 고르셨다면 어떤 피해였는지 내용을 적어 주세요.',
  errTextTooLong: '내용은 {max}자까지 쓸 수 있습니다(지금 {n}자).',
  errAmount: '금액은 0 이상의 정수로 적어 주세요(예: 30000).',
  errAmountTooLarge: '금액이 너무 큽니다.',
  errReportForbidden: '이 장애는 내 계정에 영향을 주지 않아 피해를 신고할 수 없습니다.',
  errReportLimit: '장애 한 건에 신고는 10건까지 할 수 있습니다.',
  errReportTooLarge: '신고 내용이 너무 깁니다. 4000자까지 쓸 수 있습니다.',
  errReportNetwork: '응답하는 데이터센터가 없어 신고를 보내지 못했습니다. 다시 시도해 주세요. 두 번 접수되지는 않습니다.',
  errIncidentGone: '이 장애는 더 이상 목록에 없습니다.',
  serverNotices: '서버 알림',
  noticesReadOnly: '서비스에서 보내는 알림입니다. 이 방에서는 답장할 수 없습니다.',
  searchAll: '메시지 검색',
  searchRoom: '이 채팅방에서 검색',
  searchGo: '검색',
  searchOpen: '이 채팅방에서 검색',
  searchClose: '검색 닫기',
  searchClear: '검색어 지우기',
  searching: '검색 중…',
  searchCountOne: '메시지 1개',
  searchCount: '메시지 {n}개',
  searchNone: '“{term}” 검색 결과가 없습니다.',
  searchError: '검색하지 못했습니다: {msg}',
  searchTooBroad: '이 단어가 들어간 메시지가 너무 많습니다. 단어를 더 넣거나 한 채팅방에서 검색하세요.',
  searchMore: '결과 더 보기',
  searchResultLabel: '{room}, {sender}, {time}: {body}',
  searchNotShown: '이 메시지는 불러온 대화보다 더 이전에 있어서 보여 줄 수 없습니다.',
  language: '언어',
  switchLanguage: '언어: 한국어. 영어로 바꾸기',
  cannotSend: '이 방에서는 메시지를 보낼 수 없습니다.',
};

/** forcedLang is the language ?lang= asks for ("" for none). */
export const forcedLang = (() => {
  const q = new URLSearchParams(location.search).get('lang');
  return q === 'ko' || q === 'en' ? q : '';
})();

/** browserLang is the language of the browser: "ko" or "en". */
export function browserLang() {
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  return String(langs[0] || 'en').toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

function pickLang() {
  if (forcedLang) return forcedLang;
  const chosen = loadLanguageChoice();
  return chosen ? chosen.language : browserLang();
}

/** The UI language: "ko" or "en" (a live binding: setLang changes it). */
export let lang = '';
let dict = en;
let timeFmt, dayFmt, shortDayFmt, dateTimeFmt, resultDayFmt;

/** setLang makes l ("ko" or "en") the UI language; it returns whether it changed. */
export function setLang(l) {
  if (l !== 'ko' && l !== 'en') return false;
  if (l === lang) return false;
  lang = l;
  dict = l === 'ko' ? ko : en;
  // English in the browser's own English (en-GB dates stay en-GB).
  const locale = l === 'ko' ? 'ko-KR' : browserLang() === 'en' ? undefined : 'en-US';
  timeFmt = new Intl.DateTimeFormat(locale, { hour: 'numeric', minute: '2-digit' });
  dayFmt = new Intl.DateTimeFormat(locale, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
  shortDayFmt = new Intl.DateTimeFormat(locale, { month: 'short', day: 'numeric' });
  dateTimeFmt = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
  resultDayFmt = new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', day: 'numeric' });
  if (typeof document !== 'undefined') document.documentElement.lang = l;
  return true;
}
setLang(pickLang());

/** t returns the text for key with {name} placeholders filled from vars. */
export function t(key, vars = {}) {
  const s = dict[key] ?? en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** fmtTime formats a timestamp (ms) as a clock time. */
export function fmtTime(ts) {
  return timeFmt.format(new Date(ts));
}

/** dayKey returns a key that is equal for timestamps of the same local day. */
export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** fmtDay formats the day of a timestamp for a day separator. */
export function fmtDay(ts) {
  return dayFmt.format(new Date(ts));
}

/** fmtListTime is the time shown in the chat list: clock today, else the date. */
export function fmtListTime(ts) {
  if (!ts) return '';
  if (dayKey(ts) === dayKey(Date.now())) return fmtTime(ts);
  if (dayKey(ts) === dayKey(Date.now() - 86400000)) return t('yesterday');
  return shortDayFmt.format(new Date(ts));
}

/** fmtResultTime is the time of a search result: clock today, else date and clock. */
export function fmtResultTime(ts) {
  if (dayKey(ts) === dayKey(Date.now())) return fmtTime(ts);
  const day = dayKey(ts) === dayKey(Date.now() - 86400000) ? t('yesterday') : resultDayFmt.format(new Date(ts));
  return `${day} ${fmtTime(ts)}`;
}

/** fmtDateTime formats a time (ms or a string Date parses) as a local date and time. */
export function fmtDateTime(ts) {
  return dateTimeFmt.format(new Date(ts));
}

/**
 * fmtDuration formats ms in hours and minutes, or seconds under a minute,
 * the way the server's notices do ("1시간 5분", "1 h 5 min", "40초").
 */
export function fmtDuration(ms) {
  if (ms < 60000) {
    const s = Math.max(1, Math.floor(ms / 1000));
    return lang === 'ko' ? `${s}초` : `${s} s`;
  }
  const total = Math.round(ms / 60000);
  const hrs = Math.floor(total / 60);
  const min = total % 60;
  if (lang === 'ko') return hrs === 0 ? `${min}분` : min === 0 ? `${hrs}시간` : `${hrs}시간 ${min}분`;
  return hrs === 0 ? `${min} min` : min === 0 ? `${hrs} h` : `${hrs} h ${min} min`;
}
