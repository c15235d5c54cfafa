package api

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/amlsim/amlsim/sim"
)

// publishedVersions are the api-versions of Microsoft.MachineLearningServices
// in the REST specs (Azure/azure-rest-api-specs,
// specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/{stable,preview}/*,
// cross-checked with Azure/bicep-types-az and the Learn template reference
// of workspaces/computes), oldest first. Every one of them defines the
// workspace and compute paths amlsim serves.
var publishedVersions = []string{
	"2018-03-01-preview", "2018-11-19", "2019-05-01", "2019-06-01", "2019-11-01",
	"2020-01-01", "2020-02-18-preview", "2020-03-01", "2020-04-01", "2020-04-01-preview",
	"2020-05-01-preview", "2020-05-15-preview", "2020-06-01", "2020-08-01", "2020-09-01-preview",
	"2021-01-01", "2021-03-01-preview", "2021-04-01", "2021-07-01",
	"2022-01-01-preview", "2022-02-01-preview", "2022-05-01", "2022-06-01-preview", "2022-10-01",
	"2022-10-01-preview", "2022-12-01-preview",
	"2023-02-01-preview", "2023-04-01", "2023-04-01-preview", "2023-06-01-preview", "2023-08-01-preview", "2023-10-01",
	"2024-01-01-preview", "2024-04-01", "2024-04-01-preview", "2024-07-01-preview", "2024-10-01", "2024-10-01-preview",
	"2025-01-01-preview", "2025-04-01", "2025-04-01-preview", "2025-06-01", "2025-07-01-preview", "2025-09-01",
	"2025-10-01-preview", "2025-12-01",
	"2026-01-15-preview", "2026-03-01", "2026-03-15-preview", "2026-05-01", "2026-05-15-preview",
	"2026-07-01", "2026-07-15-preview", "2026-09-01", "2026-09-15-preview",
}

// since names the first preview and the first stable api-version that
// define a property; "" for none, allVersions for every one.
type since struct{ preview, stable string }

const allVersions = "0000"

// propertySince lists the ComputeInstanceProperties that not every
// api-version defines. A response in another version leaves them out and
// a request in one cannot set them (they are dropped as unknown), as
// Azure's typed models do. Sources: the Learn change log of
// workspaces/computes (learn.microsoft.com/azure/templates/
// microsoft.machinelearningservices/change-log/workspaces/computes:
// 2023-08-01-preview added enableOSPatching, enableRootAccess, enableSSO
// and releaseQuotaOnStop, 2023-10-01 removed them), Azure/bicep-types-az
// per version (enableSSO and idleTimeBeforeShutdown are back in stable
// 2025-12-01; autologgerSettings is in no stable version up to 2026-09-01),
// and the Go SDK's models (customServices and osImageMetadata are absent
// at 2022-10-01, armmachinelearning/v3, and present at 2024-04-01, v4;
// 2023-04-01 and 2023-10-01 are assumed to have them).
var propertySince = map[string]since{
	"enableOSPatching":       {preview: "2023-08-01-preview"},
	"enableRootAccess":       {preview: "2023-08-01-preview"},
	"releaseQuotaOnStop":     {preview: "2023-08-01-preview"},
	"enableSSO":              {preview: "2023-08-01-preview", stable: "2025-12-01"},
	"idleTimeBeforeShutdown": {preview: allVersions, stable: "2025-12-01"},
	"autologgerSettings":     {preview: allVersions},
	"customServices":         {preview: "2022-06-01-preview", stable: "2023-04-01"},
	"osImageMetadata":        {preview: "2022-10-01-preview", stable: "2023-04-01"},
}

// hasProperty reports whether api-version version defines a
// ComputeInstanceProperties property.
func hasProperty(version, property string) bool {
	sn, ok := propertySince[property]
	if !ok {
		return true
	}
	first := sn.stable
	if strings.HasSuffix(version, "-preview") {
		first = sn.preview
	}
	return first != "" && versionDate(version) >= versionDate(first)
}

// newestVersion is the date of the newest published api-version.
var newestVersion = func() string {
	newest := ""
	for _, v := range publishedVersions {
		newest = max(newest, versionDate(v))
	}
	return newest
}()

// newestStable is the newest published api-version that is not a
// preview.
var newestStable = func() string {
	newest := ""
	for _, v := range publishedVersions {
		if !strings.HasSuffix(v, "-preview") {
			newest = max(newest, v)
		}
	}
	return newest
}()

func versionDate(v string) string { return strings.TrimSuffix(v, "-preview") }

// newerSeen remembers the newer-than-known versions already logged.
var newerSeen sync.Map

// checkVersion answers a well-formed api-version as ARM does for a type of
// this provider: published versions are served; others are refused with
// NoRegisteredProviderFound and the list of supported versions
// (Azure/azure-sdk-for-js#4097, microsoft/vscode-tools-for-ai#940). A
// version newer than the newest amlsim knows is served as the newest, and
// logged, unless [api] strict_versions is set: SDKs move faster than any
// simulator. An impossible date (2024-13-45) is refused like an
// unpublished version; no report shows ARM's answer to one.
func (s *Server) checkVersion(version string, rt route, vars map[string]string) error {
	if slices.Contains(publishedVersions, version) {
		return nil
	}
	_, err := time.Parse(time.DateOnly, versionDate(version))
	if err == nil && versionDate(version) > newestVersion && !s.svc.Config().API.StrictVersions {
		if _, seen := newerSeen.LoadOrStore(version, true); !seen {
			s.log.Info("api-version newer than amlsim knows: answered as the newest", "api-version", version, "newest", newestVersion)
		}
		return nil
	}
	var locations []string
	for _, r := range s.svc.Config().Regions {
		locations = append(locations, r.Name)
	}
	location := vars["loc"]
	if location == "" {
		location = "*"
	}
	return sim.Errorf(sim.KindBadRequest, "NoRegisteredProviderFound",
		"No registered resource provider found for location '%s' and API version '%s' for type '%s'. The supported api-versions are '%s'. The supported locations are '%s'.",
		location, version, rt.resourceType(), strings.Join(publishedVersions, ", "), strings.Join(locations, ", "))
}

// resourceType is the ARM resource type a route serves, without the
// provider namespace: the literal segments after it that name
// collections ("workspaces/computes", "locations/usages"), leaving out a
// POST's action.
func (rt route) resourceType() string {
	var types []string
	after := false
	for i, seg := range rt.segments {
		if !after {
			after = strings.EqualFold(seg, Provider)
			continue
		}
		if strings.HasPrefix(seg, "{") {
			continue
		}
		if rt.method == "POST" && i == len(rt.segments)-1 {
			break
		}
		types = append(types, seg)
	}
	return strings.Join(types, "/")
}
