package statuspage

import "github.com/planb-chat/planb/incident"

// messages is the copy of the page in one language.
type messages struct {
	Lang       string // the language's tag: "ko" or "en"
	LangName   string // the language's own name, for the switch link
	Title      string
	AllWell    string
	Outage     string
	Degraded   string
	DrillsOnly string

	Updated    string
	Refreshing string
	Server     string

	OpenIncidents string
	DataCenters   string
	NoDataCenters string
	Ready         string
	NotReady      string
	LastHeartbeat string
	Never         string
	AgoFmt        string // "%s ago"

	Last90    string
	Uptime90  string
	DaysAgo   string
	Today     string
	DayFmt    string    // date, uptime, incidents
	Count     [3]string // no incidents, one, %d
	StripDesc string
	Rule      string

	History    string
	NoHistory  string
	MoreFmt    string // how many more incidents the JSON holds
	JSONLink   string
	Started    string
	Ended      string
	Duration   string
	SoFarFmt   string // "%s so far"
	Affected   string
	UsersFmt   string // the count, grouped
	Rooms      string
	RoomsFmt   string // the count, grouped
	Partitions string
	IncidentID string
	Drill      string
	Kinds      map[incident.Kind]string
	Units      [4]string // day, hour, minute, second
	Localtime  bool      // also show KST
}

// texts is the page's text per language. It is read only.
var texts = map[string]*messages{
	"ko": {
		Lang:       "ko",
		LangName:   "한국어",
		Title:      "서비스 상태",
		AllWell:    "모든 데이터센터 정상",
		Outage:     "장애 발생 중",
		Degraded:   "일부 데이터센터 비정상",
		DrillsOnly: "진행 중인 장애는 모두 미리 계획된 훈련입니다.",

		Updated:    "갱신",
		Refreshing: "30초마다 자동으로 새로고침됩니다",
		Server:     "응답한 서버",

		OpenIncidents: "진행 중인 장애",
		DataCenters:   "데이터센터",
		NoDataCenters: "알려진 데이터센터가 없습니다.",
		Ready:         "정상",
		NotReady:      "비정상",
		LastHeartbeat: "마지막 하트비트",
		Never:         "기록 없음",
		AgoFmt:        "%s 전",

		Last90:    "지난 90일",
		Uptime90:  "90일 가동률",
		DaysAgo:   "90일 전",
		Today:     "오늘",
		DayFmt:    "%s: 가동률 %s%%, %s",
		Count:     [3]string{"장애 없음", "장애 1건", "장애 %d건"},
		StripDesc: "지난 90일의 일별 가동률",
		Rule:      "가동률은 UTC 기준 하루(오늘은 지금까지) 중 훈련이 아닌 장애가 없던 시간의 비율이며, 겹친 장애는 한 번만 셉니다.",

		History:    "지난 장애 기록",
		NoHistory:  "지난 90일 동안 끝난 장애가 없습니다.",
		MoreFmt:    "이전 장애 %d건은 status.json에 있습니다.",
		JSONLink:   "JSON으로 보기",
		Started:    "시작",
		Ended:      "종료",
		Duration:   "지속 시간",
		SoFarFmt:   "%s째 진행 중",
		Affected:   "영향받은 사용자",
		UsersFmt:   "%s명",
		Rooms:      "쓰기가 멈춘 방",
		RoomsFmt:   "%s개",
		Partitions: "파티션",
		IncidentID: "장애 ID",
		Drill:      "훈련",
		Kinds: map[incident.Kind]string{
			incident.DataCenterLost:   "데이터센터 중단",
			incident.PartitionStalled: "파티션 쓰기 중단",
			incident.NodeNotReady:     "데이터센터 서비스 중단",
		},
		Units:     [4]string{"일", "시간", "분", "초"},
		Localtime: true,
	},
	"en": {
		Lang:       "en",
		LangName:   "English",
		Title:      "Service status",
		AllWell:    "All data centers operational",
		Outage:     "Outage in progress",
		Degraded:   "Some data centers are not ready",
		DrillsOnly: "Every open incident is a planned drill.",

		Updated:    "Updated",
		Refreshing: "refreshes every 30 s",
		Server:     "Served by",

		OpenIncidents: "Open incidents",
		DataCenters:   "Data centers",
		NoDataCenters: "No data centers known.",
		Ready:         "Ready",
		NotReady:      "Not ready",
		LastHeartbeat: "Last heartbeat",
		Never:         "never",
		AgoFmt:        "%s ago",

		Last90:    "Last 90 days",
		Uptime90:  "90-day uptime",
		DaysAgo:   "90 days ago",
		Today:     "Today",
		DayFmt:    "%s: %s%% uptime, %s",
		Count:     [3]string{"no incidents", "1 incident", "%d incidents"},
		StripDesc: "Daily uptime over the last 90 days",
		Rule:      "Uptime is the share of each UTC day (today: so far) not inside a non-drill incident; overlapping incidents count once.",

		History:    "Past incidents",
		NoHistory:  "No incidents ended in the last 90 days.",
		MoreFmt:    "%d earlier incidents are in status.json.",
		JSONLink:   "View as JSON",
		Started:    "Started",
		Ended:      "Ended",
		Duration:   "Duration",
		SoFarFmt:   "%s so far",
		Affected:   "Affected users",
		UsersFmt:   "%s",
		Rooms:      "Rooms with stalled writes",
		RoomsFmt:   "%s",
		Partitions: "Partitions",
		IncidentID: "Incident ID",
		Drill:      "Drill",
		Kinds: map[incident.Kind]string{
			incident.DataCenterLost:   "Data center lost",
			incident.PartitionStalled: "Partition writes stalled",
			incident.NodeNotReady:     "Data center not serving",
		},
		Units:     [4]string{"d", "h", "m", "s"},
		Localtime: false,
	},
}
